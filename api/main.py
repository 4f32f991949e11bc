"""The FastAPI application: one router per audience, resources on app.state."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI

from api import errors, limits
from api.headers import SecurityHeaders
from api.metrics import Metrics
from api.observe import Observe
from api.residents import AnswerCounts, RateLimiter, SessionIds
from api.routes import (
    auth,
    chat,
    editor,
    health,
    pages,
    staff,
    suggestions,
    tickets,
    unanswered,
    users,
)
from api.service import EngineHolder, RasaCircuit
from assistant.operations import logs
from assistant.operations.config import HANDOFF_WINDOW_S, Settings
from assistant.operations.keys import internal_token, load_secret
from knowledge.city import CityProfile


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env(os.environ)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        # The city profile for routes that need no engine (the editor's "today").
        app.state.city = CityProfile.load(settings.city_path)
        app.state.chat_headers = pages.chat_headers(app.state.city.embed_origins)
        app.state.engines = EngineHolder(app.state.settings)
        app.state.rasa_circuit = RasaCircuit(app.state.settings.rasa_retry_s)
        app.state.degraded_chat = None  # made with the engine, on first use
        settings_ = app.state.settings
        secret = load_secret(settings_.secret_path)
        app.state.session_ids = SessionIds(secret, settings_.conversation_ttl_s)
        app.state.internal_token = internal_token(secret)  # shown to Rasa's REST channel
        app.state.chat_per_client = RateLimiter(settings_.chat_rate_per_client)
        app.state.chat_per_session = RateLimiter(settings_.chat_rate_per_session)
        app.state.handoffs_per_client = RateLimiter(
            settings_.handoff_rate_per_client, window_s=HANDOFF_WINDOW_S
        )
        # The chat page polls every 3 s while a person has the conversation.
        app.state.polls_per_session = RateLimiter(60)
        app.state.answer_counts = AnswerCounts()
        app.state.metrics = Metrics(app.state.settings, lambda: service_state(app))
        app.state.engines.start()
        # A normal start (loading a current index) is over in a second or two; only a
        # long rebuild goes on in the background while health reports its progress.
        await anyio.to_thread.run_sync(app.state.engines.wait, app.state.settings.startup_wait_s)
        async with httpx.AsyncClient() as client:
            app.state.rasa_client = client
            yield

    app = FastAPI(
        title="Madoguchi",
        description="市民の問い合わせに、いつでも同じ正しい答えを。",
        version="0.1.0",
        lifespan=lifespan,
        # Our own metrics (/metrics) and request logs cover this; FastAPI's built-in
        # OpenTelemetry hooks would only add work to every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN onto the
        # consoles' origin; /docs is served from a local copy instead, when configured.
        docs_url=None,
        redoc_url=None,
    )
    limits.install(app)
    errors.install(app)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(Observe)
    app.include_router(auth.router)
    app.include_router(chat.router)
    app.include_router(staff.router)
    app.include_router(tickets.router)
    app.include_router(editor.router)
    app.include_router(editor.preview_router)
    app.include_router(unanswered.router)
    app.include_router(suggestions.router)
    app.include_router(users.router)
    app.include_router(health.router)
    app.include_router(pages.router)
    if settings.docs_assets is not None:
        pages.install_docs(app, settings.docs_assets)
    app.mount("/static", pages.Assets(directory=pages.STATIC), name="static")
    return app


def service_state(app: FastAPI) -> dict:
    engines: EngineHolder = app.state.engines
    return {
        "engine": engines.engine,
        "ready": int(engines.engine is not None),
        "degraded": int(app.state.rasa_circuit.degraded),
    }


if not logs.configure_from_env("api"):
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
app = create_app()
