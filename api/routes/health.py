"""Health: one status an operator or a load balancer can read, and why."""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, KnowledgeDb, KnowledgeEngine, RasaClient
from api.schemas import HealthPublic
from knowledge.store import knowledge_revision

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health", response_model=HealthPublic)
async def health(
    settings: AppSettings, db: KnowledgeDb, engine: KnowledgeEngine, rasa: RasaClient
) -> HealthPublic:
    components: dict[str, dict] = {}
    try:
        revision = await run_in_threadpool(knowledge_revision, db)
        components["database"] = {"status": "ok", "knowledge_revision": revision}
    except Exception as error:  # report, don't crash: health must always answer
        revision = None
        components["database"] = {"status": "error", "error": repr(error)}
    index_revision = engine.dense.knowledge_revision
    components["index"] = {
        "status": "ok" if revision is None or index_revision == revision else "stale",
        "entries": engine.dense.entry_count(),
        "knowledge_revision": index_revision,
    }
    components["encoder"] = {
        "status": "ok",
        "path": str(settings.encoder_path),
        "fingerprint": engine.dense.encoder_fingerprint,
    }
    try:
        reply = await rasa.get(f"{settings.rasa_url}/", timeout=2.0)
        components["rasa"] = {
            "status": "ok" if reply.status_code == 200 else "error",
            "url": settings.rasa_url,
        }
    except httpx.HTTPError as error:
        components["rasa"] = {
            "status": "unreachable",
            "url": settings.rasa_url,
            "error": type(error).__name__,
        }
    healthy = all(c["status"] == "ok" for c in components.values())
    return HealthPublic(status="ok" if healthy else "degraded", components=components)
