"""What every action shares: one engine, the knowledge database and the city profile,
loaded once per action-server process from the environment's settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlite_utils
from rasa_sdk.executor import CollectingDispatcher

from assistant.config import Settings
from assistant.engine import Decision, Engine
from knowledge.city import CityProfile
from knowledge.store import open_db


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env(os.environ)


@lru_cache(maxsize=1)
def engine() -> Engine:
    return Engine.load(settings())


@contextmanager
def database() -> Iterator[sqlite_utils.Database]:
    """A connection for one action's writes (SQLite connections are not shared across
    the action server's threads), closed when the action is done with it."""
    db = open_db(settings().database_path)
    try:
        yield db
    finally:
        db.close()


def city() -> CityProfile:
    """The engine's city profile: answers and contacts come from one loaded copy."""
    return engine().city


def candidates_payload(decision: Decision) -> list[dict[str, Any]]:
    return [
        {
            "entry_id": c.entry_id,
            "revision": c.revision,
            "title": c.title,
            "score": c.score,
            "dense": c.dense,
            "lexical": c.lexical,
        }
        for c in decision.candidates
    ]


def metadata(decision: str, **fields: Any) -> dict[str, Any]:
    """The custom payload the API reads to fill ``decision``, ``entry_id`` and so on."""
    return {"madoguchi": {"decision": decision, **fields}}


def say(
    dispatcher: CollectingDispatcher,
    text: str,
    decision: str,
    buttons: list[dict[str, str]] | None = None,
    **fields: Any,
) -> None:
    """Send ``text`` inside our custom payload rather than as Rasa text.

    Rasa's REST channel splits text at blank lines into separate messages; carried in
    the payload, an entry's answer reaches the resident byte for byte as one reply.
    """
    payload = {"text": text, **fields}
    if buttons:
        payload["buttons"] = buttons
    dispatcher.utter_message(json_message=metadata(decision, **payload))
