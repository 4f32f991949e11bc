"""Every request's id, access log line and metrics, as plain ASGI middleware (no
per-request task or body buffering, which Starlette's ``BaseHTTPMiddleware`` adds).

The request id comes from an ``X-Request-ID`` header if well-formed, else is made here;
it is returned in the response's ``X-Request-ID`` and is in every log line written while
the request is handled (``assistant.operations.logs``), including the action server's, through the
message metadata the chat passes to Rasa.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.operations import logs

access_log = logging.getLogger("madoguchi.access")


class Observe:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = logs.new_request_id(incoming.decode("latin-1") if incoming else None)
        status = 500  # if the app fails before it starts a response
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        with logs.request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                # The route's template ("/api/tickets/{ticket_id}"), set by the router.
                route = getattr(scope.get("route"), "path", "unmatched")
                metrics = getattr(scope["app"].state, "metrics", None)
                if metrics is not None:
                    metrics.observe_request(scope["method"], route, status, seconds)
                # Who, for staff and editor requests (set by api.auth): with the route,
                # a record of every read of a ticket or entry, beside the audit log's
                # record of every change.
                user = scope.get("state", {}).get("user")
                extra = {
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                }
                if user:
                    extra["user"] = user
                access_log.info(
                    "%s %s %d %.1f ms%s",
                    scope["method"],
                    route,
                    status,
                    seconds * 1000,
                    f" {user}" if user else "",
                    extra=extra,
                )
