"""Health and metrics: one status an operator or a load balancer can read, and why.

Anyone (a load balancer) gets the status and each component's status; the reasons and
details (paths, internal addresses, errors, versions of the index) only staff, or a
caller on this machine. ``/metrics`` needs ``MADOGUCHI_METRICS_TOKEN`` as a bearer
token, or without one comes only from this machine: its counts (failed logins among
them) tell an attacker how their attempts are going.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
from typing import Annotated

import httpx
from fastapi import APIRouter, Header, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.auth import MaybeStaff, client_address
from api.deps import AppSettings, KnowledgeDb, RasaClient
from api.schemas import HealthPublic
from assistant.operations.supervisor import read_state
from knowledge.store import knowledge_revision

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=HealthPublic)
async def health(
    request: Request, settings: AppSettings, db: KnowledgeDb, rasa: RasaClient, staff: MaybeStaff
) -> HealthPublic:
    """``ok`` when every part works; ``degraded`` with ``reasons`` otherwise. The chat
    still answers when degraded (from the engine, if Rasa is down). Reasons and details
    only to staff and to callers on this machine."""
    report = await _report(request, settings, db, rasa)
    if staff is not None or _local(request):
        return report
    return HealthPublic(
        status=report.status,
        reasons=[],
        components={name: {"status": c["status"]} for name, c in report.components.items()},
    )


def _local(request: Request) -> bool:
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:  # "unknown", or a test client's made-up name
        return False


async def _report(request: Request, settings, db, rasa) -> HealthPublic:
    components: dict[str, dict] = {}
    reasons: list[str] = []
    try:
        revision = await run_in_threadpool(knowledge_revision, db)
        components["database"] = {"status": "ok", "knowledge_revision": revision}
    except Exception as error:  # report, don't crash: health must always answer
        revision = None
        components["database"] = {"status": "error", "error": repr(error)}
        reasons.append(f"database unreadable: {error!r}")
    engines = request.app.state.engines
    engine = engines.engine
    index = engines.describe()
    if engine is not None:
        index_revision = engine.dense.knowledge_revision
        index |= {
            "entries": engine.dense.entry_count(),
            "vectors": len(engine.dense.rows),
            "knowledge_revision": index_revision,
            # What the knowledge base's own texts changed in the decision (Engine.sync).
            "calibration": dict(engine.calibration),
        }
        if revision is not None and index_revision != revision:
            index["status"] = "stale"  # brought up to date by the next search
        components["encoder"] = {
            "status": "ok",
            "path": str(settings.encoder_path),
            "fingerprint": engine.dense.encoder_fingerprint,
        }
    elif engines.state == "rebuilding":
        reasons.append(
            f"index rebuilding ({index['progress']} entry revisions): chat and lookup "
            "answer when it is done"
        )
    elif engines.state == "failed":
        reasons.append(f"engine failed to load: {engines.error}")
    else:
        reasons.append("engine loading")
    components["index"] = index
    components["rasa"] = await _probe(rasa, f"{settings.rasa_url}/", settings.rasa_url)
    components["actions"] = await _probe(
        rasa,
        f"{settings.action_url}/health",
        settings.action_url,
    )
    # Under `madoguchi serve`: what the supervisor knows of each process (restarts, the
    # last exit, whether it was given up).
    supervised = await run_in_threadpool(read_state, settings.home)
    for name in ("rasa", "actions"):
        if components[name]["status"] != "ok":
            reason = (
                f"{name} {components[name]['status']}: the chat answers from the engine "
                "directly (no NLU, no small talk)"
            )
            known = (supervised or {}).get(name, {})
            if known.get("state") in ("restarting", "starting"):
                reason += f"; it {known['last_exit']} and is being started again"
            reasons.append(reason)
    if supervised is not None:
        given_up = sorted(name for name, s in supervised.items() if s["state"] == "given_up")
        components["supervisor"] = {
            "status": "degraded" if given_up else "ok",
            "services": supervised,
        }
        for name in given_up:
            reasons.append(
                f"{name} failed too often and is not started again (last: it "
                f"{supervised[name]['last_exit']}); see logs/{name}.log, fix it, then "
                "restart `madoguchi serve`"
            )
    circuit = request.app.state.rasa_circuit
    components["chat"] = {"status": "degraded" if circuit.degraded else "ok"}
    if circuit.degraded:
        since = dt.datetime.fromtimestamp(circuit.since, dt.UTC).isoformat(timespec="seconds")
        components["chat"] |= {"since": since, "reason": circuit.reason}
        if components["rasa"]["status"] == "ok":
            reasons.append(f"chat answering from the engine since {since} ({circuit.reason})")
    healthy = not reasons and all(c["status"] == "ok" for c in components.values())
    if not healthy and not reasons:
        reasons.append("index stale: it catches up at the next search")
    return HealthPublic(
        status="ok" if healthy else "degraded", reasons=reasons, components=components
    )


async def _probe(client: httpx.AsyncClient, url: str, shown: str) -> dict:
    try:
        reply = await client.get(url, timeout=2.0)
    except httpx.HTTPError as error:
        return {"status": "unreachable", "url": shown, "error": type(error).__name__}
    return {"status": "ok" if reply.status_code == 200 else "error", "url": shown}


@router.get("/metrics", include_in_schema=False)
def metrics(
    request: Request,
    settings: AppSettings,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Prometheus text format, to the monitoring token or (without one) to this machine."""
    if settings.metrics_token:
        scheme, _, given = (authorization or "").partition(" ")
        expected = settings.metrics_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), expected
        ):
            raise HTTPException(
                401,
                detail="metrics need the monitoring token",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not _local(request):
        raise HTTPException(403, detail="metrics are served only to this machine")
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
