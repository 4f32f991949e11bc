"""Logging in: a session cookie for the pages, bearer tokens for API clients."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from api.auth import COOKIE, CurrentSession, client_address
from api.deps import AppSettings, KnowledgeDb
from api.schemas import LoginRequest, MePublic, TokenPublic, TokenRequest
from knowledge.accounts import LoginFailed, LoginThrottled, Session, log_in, log_out

router = APIRouter(prefix="/api/auth", tags=["auth"])
WRONG = "ユーザー名またはパスワードが違います。"


def _me(session: Session) -> MePublic:
    return MePublic(
        name=session.user.name,
        role=session.user.role,
        display_name=session.user.display_name,
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
    )


def _log_in(db, request: Request, name: str, password: str, **kwargs) -> Session:
    try:
        return log_in(db, name, password, client=client_address(request), **kwargs)
    except LoginThrottled as error:
        raise HTTPException(
            429,
            # The wait is in Retry-After (seconds); the login page words it.
            detail="ログインの失敗が続いたため、一時的にログインできません。",
            headers={"Retry-After": str(error.retry_after_s)},
        ) from None
    except LoginFailed:
        raise HTTPException(401, detail=WRONG) from None


@router.post("/login", response_model=MePublic)
def login(
    body: LoginRequest, request: Request, response: Response, db: KnowledgeDb, settings: AppSettings
) -> MePublic:
    """Check the password; set the session cookie (HttpOnly, SameSite=Strict)."""
    session = _log_in(db, request, body.name, body.password)
    response.set_cookie(
        COOKIE,
        session.token,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies or request.url.scheme == "https",
        path="/",
    )
    return _me(session)


@router.get("/me", response_model=MePublic)
def me(session: CurrentSession) -> MePublic:
    """Who is logged in, and the CSRF token the page sends with every change."""
    return _me(session)


@router.post("/logout", status_code=204)
def logout(session: CurrentSession, db: KnowledgeDb) -> Response:
    log_out(db, session.token)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/token", response_model=TokenPublic)
def token(body: TokenRequest, request: Request, db: KnowledgeDb) -> TokenPublic:
    """A bearer token for an API client, valid ``expires_in_s`` (at most 30 days)."""
    session = _log_in(
        db, request, body.name, body.password, kind="token", lifetime_s=body.expires_in_s
    )
    return TokenPublic(
        access_token=session.token,
        token_type="bearer",
        expires_at=session.expires_at,
        role=session.user.role,
    )
