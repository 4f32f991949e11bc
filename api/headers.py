"""Security headers on every response, as plain ASGI middleware (like ``api.observe``).

- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin`` everywhere;
- a Content-Security-Policy on every response that has none of its own (the pages set
  theirs in ``api.routes.pages``): JSON, scripts and errors load nothing and are framed
  by nobody, so even a response a browser is tricked into rendering runs nothing;
- ``Cache-Control: no-store`` on every API response that does not say otherwise: the
  CSRF token (``/api/auth/me``), tickets and drafts must not stay in a browser's or a
  proxy's cache.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k not in dict(ALWAYS)]
                names = {k for k, _ in headers}
                headers.extend(ALWAYS)
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", DEFAULT_CSP.encode()))
                if api and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
