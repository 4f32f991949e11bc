"""Per-request resources as typed dependencies; tests swap them via dependency_overrides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import httpx
import sqlite_utils
from fastapi import Depends, HTTPException, Request

from assistant.operations.config import Settings
from assistant.retrieval.engine import Engine
from knowledge.city import CityProfile
from knowledge.store import open_db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


STARTING = "ただいま準備中です。しばらくしてからもう一度お試しください。"


def get_engine(request: Request) -> Engine:
    """The engine, once loaded; until then (a rebuild at start) a 503 with Retry-After."""
    engine = request.app.state.engines.engine
    if engine is None:
        raise HTTPException(503, detail=STARTING, headers={"Retry-After": "10"})
    return engine


def get_city(request: Request) -> CityProfile:
    """The city profile (its clock gives "today"); there even while the engine loads."""
    return request.app.state.city


def get_rasa_client(request: Request) -> httpx.AsyncClient:
    return request.app.state.rasa_client


def get_db(settings: Annotated[Settings, Depends(get_settings)]) -> Iterator[sqlite_utils.Database]:
    """A connection per request: SQLite connections must not be shared across threads."""
    db = open_db(settings.database_path)
    try:
        yield db
    finally:
        db.close()


AppSettings = Annotated[Settings, Depends(get_settings)]
KnowledgeEngine = Annotated[Engine, Depends(get_engine)]
KnowledgeDb = Annotated[sqlite_utils.Database, Depends(get_db)]
City = Annotated[CityProfile, Depends(get_city)]
RasaClient = Annotated[httpx.AsyncClient, Depends(get_rasa_client)]
