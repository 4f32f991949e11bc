"""Logging in: a session cookie for the pages, bearer tokens for API clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api.auth import CurrentSession, client_address, cookie_name, secure_request
from api.deps import AppSettings, KnowledgeDb
from api.schemas import (
    LoginRequest,
    MePublic,
    SessionPublic,
    SessionsPublic,
    TokenPublic,
    TokenRequest,
)
from knowledge.accounts import (
    Session,
    end_session,
    log_in,
    log_out,
    sessions_of,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _me(session: Session) -> MePublic:
    return MePublic(
        name=session.user.name,
        role=session.user.role,
        display_name=session.user.display_name,
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
    )


@router.post("/login", response_model=MePublic)
def login(
    body: LoginRequest, request: Request, response: Response, db: KnowledgeDb, settings: AppSettings
) -> MePublic:
    """Check the password; set the session cookie (HttpOnly, SameSite=Strict; over
    HTTPS Secure and named with the ``__Host-`` prefix)."""
    session = log_in(db, body.name, body.password, client=client_address(request))
    response.set_cookie(
        cookie_name(request, settings),
        session.token,
        httponly=True,
        samesite="strict",
        secure=secure_request(request, settings),
        path="/",
    )
    return _me(session)


@router.get("/me", response_model=MePublic)
def me(session: CurrentSession) -> MePublic:
    """Who is logged in, and the CSRF token the page sends with every change."""
    return _me(session)


@router.post("/logout", status_code=204)
def logout(
    session: CurrentSession, db: KnowledgeDb, request: Request, settings: AppSettings
) -> Response:
    log_out(db, session.token)
    response = Response(status_code=204)
    secure = secure_request(request, settings)
    response.delete_cookie(cookie_name(request, settings), path="/", secure=secure)
    return response


@router.get("/sessions", response_model=SessionsPublic)
def list_sessions(session: CurrentSession, db: KnowledgeDb) -> SessionsPublic:
    """Your own live sessions (cookie) and bearer tokens, newest first."""
    data = [
        SessionPublic(**vars(info), current=info.ref == session.ref)
        for info in sessions_of(db, session.user.name)
    ]
    return SessionsPublic(data=data, count=len(data))


SessionRef = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


@router.delete("/sessions/{session_ref}", status_code=204)
def delete_session(session_ref: SessionRef, session: CurrentSession, db: KnowledgeDb) -> Response:
    """End one of your own sessions or tokens (at once, on every device)."""
    end_session(db, session.user.name, session_ref)
    return Response(status_code=204)


@router.post("/token", response_model=TokenPublic)
def token(body: TokenRequest, request: Request, db: KnowledgeDb) -> TokenPublic:
    """A bearer token for an API client, valid ``expires_in_s`` (at most 30 days)."""
    session = log_in(
        db,
        body.name,
        body.password,
        client=client_address(request),
        kind="token",
        lifetime_s=body.expires_in_s,
    )
    return TokenPublic(
        access_token=session.token,
        token_type="bearer",
        expires_at=session.expires_at,
        role=session.user.role,
    )
