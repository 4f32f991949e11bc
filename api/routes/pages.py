"""The pages: resident chat (and its embeddable widget), login, staff and editor
consoles. Plain HTML, CSS and JS; no build step. The consoles check the login themselves
(``GET /api/auth/me``); everything they show comes through the role-checked API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["pages"])
STATIC = Path(__file__).resolve().parent.parent / "static"
HTML = "text/html; charset=utf-8"
# Pages embed nothing from elsewhere and are framed only by ourselves (the widget's
# iframe shows the chat page on the city's site, so the chat page may be framed).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CHAT_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", "frame-ancestors *"
    ),
}


def _page(name: str, headers: dict[str, str] = PAGE_HEADERS) -> FileResponse:
    return FileResponse(STATIC / name, media_type=HTML, headers=headers)


@router.get("/", include_in_schema=False)
def resident_chat() -> FileResponse:
    return _page("chat.html", CHAT_HEADERS)


@router.get("/widget.js", include_in_schema=False)
def widget() -> FileResponse:
    """The script a city web page includes to get the chat button."""
    return FileResponse(
        STATIC / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/login", include_in_schema=False)
def login_page() -> FileResponse:
    return _page("login.html")


@router.get("/staff", include_in_schema=False)
def staff_console() -> FileResponse:
    return _page("staff.html")


@router.get("/editor", include_in_schema=False)
def editor_console() -> FileResponse:
    return _page("editor.html")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    return FileResponse(
        STATIC / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
