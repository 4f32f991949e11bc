"""The FastAPI application: one router per audience, resources on app.state."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.routes import chat, editor, health, pages, staff, tickets
from assistant.config import Settings
from assistant.engine import Engine


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings or Settings.from_env(os.environ)
        app.state.engine = Engine.load(app.state.settings)
        app.state.city = app.state.engine.city
        async with httpx.AsyncClient() as client:
            app.state.rasa_client = client
            yield

    app = FastAPI(
        title="Madoguchi",
        description="市民の問い合わせに、いつでも同じ正しい答えを。",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(chat.router)
    app.include_router(staff.router)
    app.include_router(tickets.router)
    app.include_router(editor.router)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
