"""The pages: resident chat (and its embeddable widget), login, staff and editor
consoles. Plain HTML, CSS and JS; no build step. The consoles check the login themselves
(``GET /api/auth/me``); everything they show comes through the role-checked API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

router = APIRouter(tags=["pages"])
STATIC = Path(__file__).resolve().parent.parent / "static"
HTML = "text/html; charset=utf-8"
# Pages embed nothing from elsewhere and are framed by nobody, but for the chat page:
# the widget's iframe shows it on the city's own pages (the profile's embed_origins).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}


def chat_headers(embed_origins: tuple[str, ...]) -> dict[str, str]:
    """The chat page may be framed by this server (the widget demo) and the city's sites."""
    ancestors = " ".join(("'self'", *embed_origins))
    return {
        "Content-Security-Policy": PAGE_CSP.replace(
            "frame-ancestors 'none'", f"frame-ancestors {ancestors}"
        )
    }


class Assets(StaticFiles):
    """``/static``: the pages' scripts, styles and images, but no HTML: each page is
    served at its own route, with its own headers, and nowhere else."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.lower().endswith((".html", ".htm")):
            raise HTTPException(404)
        return await super().get_response(path, scope)


# Swagger UI and the widget's demo page set inline styles; their scripts are ours.
INLINE_STYLE_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_CSP.replace(
        "default-src 'self';", "default-src 'self'; style-src 'self' 'unsafe-inline';"
    ),
}


def _page(name: str, headers: dict[str, str] = PAGE_HEADERS) -> FileResponse:
    return FileResponse(STATIC / name, media_type=HTML, headers=headers)


@router.get("/", include_in_schema=False)
def resident_chat(request: Request) -> FileResponse:
    return _page("chat.html", request.app.state.chat_headers)


@router.get("/widget-demo", include_in_schema=False)
def widget_demo() -> FileResponse:
    """A made-up city page with the widget, to try it (and for the browser tests). It
    stands for a city's page, which has styles of its own in the page."""
    return _page("widget-demo.html", INLINE_STYLE_HEADERS)


@router.get("/widget.js", include_in_schema=False)
def widget() -> FileResponse:
    """The script a city web page includes to get the chat button."""
    return FileResponse(
        STATIC / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
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


def install_docs(app: FastAPI, assets: Path) -> None:
    """``/docs`` from a local copy of swagger-ui-dist (``MADOGUCHI_DOCS_ASSETS``)."""
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return _page("docs.html", INLINE_STYLE_HEADERS)
