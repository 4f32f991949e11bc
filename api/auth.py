"""Who is calling: staff, editor and admin accounts (``knowledge.accounts``).

Pages log in with ``POST /api/auth/login`` and carry the session in an HttpOnly cookie
(named ``__Host-madoguchi_session`` over HTTPS: the prefix makes browsers refuse it from
another subdomain or without Secure; a cookie session unused for
``MADOGUCHI_SESSION_IDLE_MINUTES`` ends);
every state-changing request made with that cookie must also send the session's CSRF
token in ``X-CSRF-Token`` (a page on another site can make the browser send the cookie,
but cannot read the token). API clients get a bearer token from ``POST /api/auth/token``
and need no CSRF token. Resident routes stay anonymous.

Routes declare the smallest role they need: ``StaffUser``, ``EditorUser``, ``AdminUser``.
Not logged in → 401, a smaller role → 403.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from api.deps import AppSettings, KnowledgeDb
from assistant.operations.config import Settings
from knowledge.accounts import Session, User, session_for

COOKIE = "madoguchi_session"
SECURE_COOKIE = "__Host-" + COOKIE
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_LOGGED_IN = "ログインが必要です。"


def client_address(request: Request) -> str:
    """The caller's address (uvicorn replaces it with the proxy's X-Forwarded-For when
    the proxy is in --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


def secure_request(request: Request, settings: Settings) -> bool:
    return settings.secure_cookies or request.url.scheme == "https"


def cookie_name(request: Request, settings: Settings) -> str:
    """Over HTTPS only the ``__Host-`` cookie counts: a plain one may have been set by a
    neighbouring subdomain."""
    return SECURE_COOKIE if secure_request(request, settings) else COOKIE


def authenticated(
    request: Request,
    db: KnowledgeDb,
    settings: AppSettings,
    authorization: Annotated[str | None, Header()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> Session:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        session = session_for(db, token.strip(), "token")
        if session is None:
            raise HTTPException(
                401,
                detail="the bearer token is unknown, expired or revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.user = session.user.name  # for the access log
        return session
    session = session_for(
        db,
        request.cookies.get(cookie_name(request, settings), ""),
        "cookie",
        idle_s=settings.session_idle_s,
    )
    if session is None:
        raise HTTPException(401, detail=NOT_LOGGED_IN, headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        given = (x_csrf_token or "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, session.csrf_token.encode()):
            raise HTTPException(
                403, detail="CSRF token missing or wrong: reload the page and try again"
            )
    request.state.user = session.user.name  # for the access log
    return session


def optional_staff(
    request: Request,
    db: KnowledgeDb,
    settings: AppSettings,
    authorization: Annotated[str | None, Header()] = None,
) -> User | None:
    """The logged-in staff member (or editor, admin) if any, else None; never refuses.
    For routes that answer everyone but tell staff more (``/api/health``)."""
    try:
        session = authenticated(request, db, settings, authorization, None)
    except HTTPException:
        return None
    return session.user if session.user.may("staff") else None


def _require(role: str):
    def dependency(session: Annotated[Session, Depends(authenticated)]) -> User:
        if not session.user.may(role):
            raise HTTPException(403, detail=f"this needs the {role} role")
        return session.user

    dependency.__name__ = f"require_{role}"
    return dependency


require_staff = _require("staff")
require_editor = _require("editor")
require_admin = _require("admin")

StaffUser = Annotated[User, Depends(require_staff)]
EditorUser = Annotated[User, Depends(require_editor)]
AdminUser = Annotated[User, Depends(require_admin)]
CurrentSession = Annotated[Session, Depends(authenticated)]
MaybeStaff = Annotated[User | None, Depends(optional_staff)]
