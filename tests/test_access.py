"""Who may call what, route by route, over a real database, engine and index.

The routes come from ``app.routes``: each is classified by the auth dependency it has
(``api.auth.require_staff`` / ``require_editor`` / ``require_admin`` / ``authenticated``,
found anywhere in its dependency tree) and the classification must match EXPECTED below.
A new route fails ``test_every_route_has_the_expected_role`` until it is added there, and
then every protected route is probed with no credentials, wrong or dead credentials, too
small a role, and cookie sessions with and without their CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from api import auth
from api.main import create_app
from api.residents import SessionIds
from knowledge.accounts import RANK, log_in, log_out, set_disabled
from knowledge.store import open_db
from knowledge.tickets import open_ticket
from tests.conftest import PASSWORD, account, bearer, copy_home, make_settings

ANONYMOUS = "anonymous"
AUTHENTICATED = "authenticated"  # any logged-in account, whatever its role

# Every route of the app and the smallest role that may call it. Keys are
# (method, path); a mount is ("MOUNT", path).
EXPECTED: dict[tuple[str, str], str] = {
    # Residents and everyone
    ("POST", "/api/chat"): ANONYMOUS,
    ("GET", "/api/chat/messages"): ANONYMOUS,
    ("GET", "/api/chat/welcome"): ANONYMOUS,
    ("GET", "/api/health"): ANONYMOUS,  # details only to staff
    ("GET", "/metrics"): ANONYMOUS,  # only to this machine, or the monitoring token
    ("POST", "/api/auth/login"): ANONYMOUS,
    ("POST", "/api/auth/token"): ANONYMOUS,
    # Pages (static HTML: they get their data through the role-checked API)
    ("GET", "/"): ANONYMOUS,
    ("GET", "/widget.js"): ANONYMOUS,
    ("GET", "/widget-demo"): ANONYMOUS,
    ("GET", "/login"): ANONYMOUS,
    ("GET", "/staff"): ANONYMOUS,
    ("GET", "/editor"): ANONYMOUS,
    ("GET", "/favicon.ico"): ANONYMOUS,
    ("MOUNT", "/static"): ANONYMOUS,
    # FastAPI's own API description (schemas only, no data); /docs only from a local
    # copy of Swagger UI (MADOGUCHI_DOCS_ASSETS), tested in tests/test_api.py
    ("GET", "/openapi.json"): ANONYMOUS,
    # Any account
    ("GET", "/api/auth/me"): AUTHENTICATED,
    ("POST", "/api/auth/logout"): AUTHENTICATED,
    ("GET", "/api/auth/sessions"): AUTHENTICATED,
    ("DELETE", "/api/auth/sessions/{session_ref}"): AUTHENTICATED,
    # Staff
    ("GET", "/api/answers"): "staff",
    ("GET", "/api/changes"): "staff",
    ("GET", "/api/tickets"): "staff",
    ("GET", "/api/tickets/{ticket_id}"): "staff",
    ("POST", "/api/tickets/{ticket_id}/claim"): "staff",
    ("POST", "/api/tickets/{ticket_id}/reply"): "staff",
    ("POST", "/api/tickets/{ticket_id}/resolve"): "staff",
    ("POST", "/api/tickets/{ticket_id}/propose"): "staff",
    # Editors
    ("GET", "/api/entries"): "editor",
    ("POST", "/api/entries"): "editor",
    ("GET", "/api/entries/{entry_id}/history"): "editor",
    ("POST", "/api/entries/{entry_id}/revisions/{revision}/submit"): "editor",
    ("POST", "/api/entries/{entry_id}/revisions/{revision}/approve"): "editor",
    ("POST", "/api/entries/{entry_id}/archive"): "editor",
    ("POST", "/api/entries/{entry_id}/rollback"): "editor",
    ("POST", "/api/preview"): "editor",
    ("GET", "/api/unanswered"): "editor",
    ("GET", "/api/suggestions"): "editor",
    ("GET", "/api/suggestions/counts"): "editor",
    ("POST", "/api/suggestions/accept"): "editor",
    ("POST", "/api/suggestions/reject"): "editor",
    # Administrators
    ("GET", "/api/users"): "admin",
    ("GET", "/api/audit"): "admin",
}

# Plausible values for path parameters (ticket 1 is made by the `settings` fixture) and
# for required query parameters.
PATH_VALUES = {
    "ticket_id": "1",
    "entry_id": "sodai-gomi",
    "revision": "1",
    "session_ref": "0123456789abcdef",
}
QUERY_VALUES = {"q": "粗大ごみを出したい"}

# A valid body for every protected route that takes one, so that only auth can refuse it.
VALID_BODIES: dict[tuple[str, str], dict] = {
    ("POST", "/api/tickets/{ticket_id}/reply"): {"text": "担当の鈴木です。確認します。"},
    ("POST", "/api/tickets/{ticket_id}/resolve"): {"note": "案内済み"},
    ("POST", "/api/tickets/{ticket_id}/propose"): {"answer": "窓口でご案内した内容です。"},
    ("POST", "/api/entries"): {
        "id": "access-test-entry",
        "title": "アクセス確認用の項目",
        "questions": ["アクセス確認の質問"],
        "answer": "アクセス確認の答えです。",
    },
    ("POST", "/api/entries/{entry_id}/archive"): {"reason": "見直し中"},
    ("POST", "/api/entries/{entry_id}/rollback"): {"to_revision": 1},
    ("POST", "/api/preview"): {"questions": ["粗大ごみを出したい"]},
    ("POST", "/api/suggestions/accept"): {"entry_id": "sodai-gomi", "items": [{"id": 1}]},
    ("POST", "/api/suggestions/reject"): {"ids": [1], "reason": "別の件"},
}

AUTH_CALLS = {
    auth.require_admin: "admin",
    auth.require_editor: "editor",
    auth.require_staff: "staff",
    auth.authenticated: AUTHENTICATED,
}
STRICTNESS = [ANONYMOUS, AUTHENTICATED, "staff", "editor", "admin"]

TICKET_SECRET_TEXT = "住民の相談内容：access-test-transcript"


# -- the routes ---------------------------------------------------------------------------


def _dependency_calls(dependant) -> set:
    calls = set()
    for sub in dependant.dependencies:
        calls.add(sub.call)
        calls |= _dependency_calls(sub)
    return calls


def classify(route) -> str:
    """The strictest auth dependency anywhere in the route's dependency tree."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return ANONYMOUS
    found = [AUTH_CALLS[call] for call in _dependency_calls(dependant) if call in AUTH_CALLS]
    return max(found, key=STRICTNESS.index, default=ANONYMOUS)


def app_routes(app) -> dict[tuple[str, str], tuple[str, object]]:
    """(method, path) → (classification, route) for every route the app serves.

    ``app.routes`` holds the included routers as such (FastAPI 0.16x); iter_route_contexts
    gives each route with its router's prefix and dependencies applied, as served."""
    routes = {}
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            routes[("MOUNT", route.path)] = (classify(route), route)
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            routes[(method, route.path)] = (classify(route), route)
    return routes


def protected_routes(app) -> list[tuple[str, str, object]]:
    """(method, path, route) of every protected route; logging out last (it ends the
    session or token it is called with)."""
    found = [
        (method, path, route)
        for (method, path), (role, route) in app_routes(app).items()
        if role != ANONYMOUS
    ]
    return sorted(found, key=lambda item: (item[1] == "/api/auth/logout", item[1], item[0]))


def call(client: TestClient, method: str, path: str, route, headers=None):
    """Call ``route`` with plausible path and query parameters and a valid body."""
    names = [p.name for p in route.dependant.path_params]
    missing = [name for name in names if name not in PATH_VALUES]
    assert not missing, f"{method} {path}: add a value for {missing} to PATH_VALUES"
    url = path.format(**{name: PATH_VALUES[name] for name in names})
    query = [p.alias for p in route.dependant.query_params if p.field_info.is_required()]
    missing = [name for name in query if name not in QUERY_VALUES]
    assert not missing, f"{method} {path}: add a value for {missing} to QUERY_VALUES"
    kwargs = {"headers": headers or {}, "params": {name: QUERY_VALUES[name] for name in query}}
    if getattr(route, "body_field", None) is not None:
        assert (method, path) in VALID_BODIES, (
            f"{method} {path} takes a body: add a valid one to VALID_BODIES in {__file__}"
        )
        kwargs["json"] = VALID_BODIES[(method, path)]
    return client.request(method, url, **kwargs)


# -- fixtures -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def starter_home(starter_template: Path) -> Path:
    """The published starter entries and their index, built once per run (conftest)."""
    return starter_template


@pytest.fixture
def settings(starter_home, tmp_path):
    """What ``starter_settings`` holds (with ticket 1), in this test's own copy. Rasa's
    ports are free ones where nothing listens."""
    home = tmp_path / "home"
    copy_home(starter_home, home)
    port = free_port()
    settings = make_settings(home, MADOGUCHI_RASA_PORT=str(port), MADOGUCHI_ACTION_PORT=str(port))
    db = open_db(settings.database_path)
    ticket = open_ticket(
        db,
        session_id=SessionIds(b"access-test-secret").issue(),
        reason="requested_human",
        transcript=[{"role": "resident", "text": TICKET_SECRET_TEXT}],
        candidates=[{"entry_id": "sodai-gomi", "revision": 1, "score": 0.4}],
    )
    db.close()
    assert ticket.id == 1
    return settings


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as client:
        yield client


def expire(settings, token: str) -> None:
    """Move the token's expiry into the past, as if its lifetime had passed."""
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).isoformat(
        timespec="seconds"
    )
    db = open_db(settings.database_path)
    try:
        with db.conn:
            changed = db.execute(
                "UPDATE auth_sessions SET expires_at = ? WHERE token_hash = ?",
                [past, hashlib.sha256(token.encode()).hexdigest()],
            ).rowcount
    finally:
        db.close()
    assert changed == 1


# -- the table ----------------------------------------------------------------------------


def test_every_route_has_the_expected_role(settings):
    routes = app_routes(create_app(settings))
    assert len(routes) > 20, "no routes found in app.routes"
    problems = []
    for key, (role, _route) in sorted(routes.items()):
        if key not in EXPECTED:
            problems.append(
                f"{key[0]} {key[1]} is not in EXPECTED in tests/test_access.py: add it with "
                f"the role it should need (it has: {role}) and check the probes below cover it"
            )
        elif EXPECTED[key] != role:
            problems.append(f"{key[0]} {key[1]}: expected {EXPECTED[key]}, the app has {role}")
    for key in sorted(EXPECTED.keys() - routes.keys()):
        problems.append(f"{key[0]} {key[1]} is in EXPECTED but the app has no such route")
    assert not problems, "\n".join(problems)


def test_the_classification_sees_router_and_parameter_dependencies(settings):
    routes = app_routes(create_app(settings))
    # Router-level (Depends in APIRouter(dependencies=...)) and parameter-level
    # (StaffUser) dependencies are both found; the strictest wins.
    assert routes[("GET", "/api/tickets/{ticket_id}")][0] == "staff"
    assert routes[("POST", "/api/auth/logout")][0] == AUTHENTICATED
    assert isinstance(routes[("GET", "/api/users")][1].original_route, APIRoute)


# -- bearer tokens ------------------------------------------------------------------------


def test_anonymous_routes_need_no_login(client):
    routes = app_routes(client.app)
    for (method, path), (role, _route) in sorted(routes.items()):
        if role != ANONYMOUS or method != "GET":
            continue
        response = client.get(path.format(**PATH_VALUES))
        if path == "/metrics":  # the test client is not on this machine
            assert response.status_code == 403
            continue
        assert response.status_code not in (401, 403), f"{method} {path}"
        assert response.status_code < 500, f"{method} {path}"


def test_anonymous_callers_get_401_on_every_protected_route(client):
    probed = {(method, path) for method, path, _ in protected_routes(client.app)}
    assert probed == {key for key, role in EXPECTED.items() if role != ANONYMOUS}
    for method, path, route in protected_routes(client.app):
        response = call(client, method, path, route)
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.json() == {"detail": auth.NOT_LOGGED_IN}, f"{method} {path}"
        assert response.headers["WWW-Authenticate"] == "Bearer", f"{method} {path}"


def test_wrong_and_dead_credentials_get_401_on_every_protected_route(client, settings):
    expired = bearer(settings, "expired-admin", "admin")
    assert client.get("/api/users", headers=expired).status_code == 200
    expire(settings, expired["Authorization"].removeprefix("Bearer "))
    disabled = bearer(settings, "gone-admin", "admin")
    assert client.get("/api/users", headers=disabled).status_code == 200
    db = open_db(settings.database_path)
    set_disabled(db, "gone-admin", True)
    revoked = bearer(settings, "revoked-admin", "admin")
    log_out(db, revoked["Authorization"].removeprefix("Bearer "))
    db.close()
    credentials = {
        "wrong token": {"Authorization": "Bearer nope"},
        "empty token": {"Authorization": "Bearer "},
        "very long token": {"Authorization": "Bearer " + "x" * 500},
        "not a bearer token": {"Authorization": "Basic a2Fucmk6cGFzc3dvcmQ="},
        "expired token": expired,
        "disabled user's token": disabled,
        "logged-out token": revoked,
    }
    for kind, headers in credentials.items():
        for method, path, route in protected_routes(client.app):
            response = call(client, method, path, route, headers=headers)
            assert response.status_code == 401, f"{kind}: {method} {path}: {response.text}"
            assert "detail" in response.json()


def test_each_role_may_call_exactly_its_routes(client, settings):
    tokens = {
        role: bearer(settings, f"probe-{role}", role) for role in ("staff", "editor", "admin")
    }
    for role, headers in tokens.items():
        for method, path, route in protected_routes(client.app):
            needed = EXPECTED[(method, path)]
            allowed = needed == AUTHENTICATED or RANK[role] >= RANK[needed]
            response = call(client, method, path, route, headers=headers)
            where = f"{role} token: {method} {path}: {response.status_code} {response.text[:200]}"
            if allowed:
                assert response.status_code not in (401, 403), where
                assert response.status_code < 500, where
            else:
                assert response.status_code == 403, where
                assert response.json() == {"detail": f"this needs the {needed} role"}, where


def test_staff_cannot_edit_and_editors_cannot_administer(client, settings):
    staff = bearer(settings, "sato", "staff")
    editor = bearer(settings, "suzuki", "editor")
    for method, path in [("GET", "/api/entries"), ("POST", "/api/preview"), ("GET", "/api/users")]:
        route = app_routes(client.app)[(method, path)][1]
        assert call(client, method, path, route, headers=staff).status_code == 403
    for method, path in [("GET", "/api/users"), ("GET", "/api/audit")]:
        route = app_routes(client.app)[(method, path)][1]
        assert call(client, method, path, route, headers=editor).status_code == 403
    # Nothing was changed by the refused calls.
    assert client.get("/api/entries", headers=editor).json()["count"] > 0
    entry = client.get("/api/entries/sodai-gomi/history", headers=editor).json()
    assert [r["revision"] for r in entry["revisions"]] == [1]


# -- cookie sessions ----------------------------------------------------------------------


def log_in_with_cookie(client: TestClient, settings, name: str, role: str) -> str:
    account(settings, name, role)
    response = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert auth.COOKIE in client.cookies
    return response.json()["csrf_token"]


def test_cookie_sessions_need_the_csrf_token_for_every_change(client, settings):
    csrf = log_in_with_cookie(client, settings, "kanri", "admin")
    # The CSRF token of another live session (another person's page) is not this one's.
    account(settings, "other-admin", "admin")
    db = open_db(settings.database_path)
    other = log_in(db, "other-admin", PASSWORD, client="tests").csrf_token
    db.close()
    assert other and other != csrf
    wrong_tokens = {
        "no token": {},
        "empty token": {"X-CSRF-Token": ""},
        "wrong token": {"X-CSRF-Token": "nope"},
        "another session's token": {"X-CSRF-Token": other},
        "the token with a suffix": {"X-CSRF-Token": csrf + "x"},
    }
    routes = protected_routes(client.app)
    changes = [(m, p, r) for m, p, r in routes if m not in ("GET", "HEAD", "OPTIONS")]
    assert len(changes) >= 10
    for kind, headers in wrong_tokens.items():
        for method, path, route in changes:
            response = call(client, method, path, route, headers=headers)
            assert response.status_code == 403, f"{kind}: {method} {path}: {response.text}"
            assert "CSRF" in response.json()["detail"], f"{kind}: {method} {path}"
    # Refused changes changed nothing: the session is still there, the entry untouched.
    assert client.get("/api/auth/me").status_code == 200
    history = client.get("/api/entries/sodai-gomi/history").json()
    assert [r["revision"] for r in history["revisions"]] == [1]
    # Reading needs no token; with the right token every change gets past auth (logging
    # out, last, ends the session).
    for method, path, route in routes:
        headers = {} if method == "GET" else {"X-CSRF-Token": csrf}
        response = call(client, method, path, route, headers=headers)
        where = f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert response.status_code not in (401, 403), where
        assert response.status_code < 500, where
    assert client.get("/api/auth/me").status_code == 401


def test_a_bearer_header_is_not_needed_with_a_cookie_and_not_overridden_by_one(client, settings):
    csrf = log_in_with_cookie(client, settings, "kanri", "admin")
    # A wrong bearer token is refused even though a good cookie session is there.
    response = client.get("/api/users", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    # A staff token with an admin cookie: the token decides.
    staff = bearer(settings, "sato", "staff")
    assert client.get("/api/users", headers=staff).status_code == 403
    assert client.get("/api/users").status_code == 200
    # A bearer token needs no CSRF token (the cookie alone does); the cookie's CSRF token
    # is no bearer token.
    preview = {"questions": ["住民票"]}
    assert client.post("/api/preview", json=preview).status_code == 403
    editor = bearer(settings, "suzuki", "editor")
    assert client.post("/api/preview", json=preview, headers=editor).status_code == 200
    as_bearer = {"Authorization": f"Bearer {csrf}"}
    assert client.get("/api/users", headers=as_bearer).status_code == 401


def test_a_cross_site_form_cannot_log_in(client, settings):
    # A form on another site can post text/plain but not application/json.
    account(settings, "kanri", "admin")
    body = f'{{"name": "kanri", "password": "{PASSWORD}"}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post(
            "/api/auth/login", content=body.encode(), headers={"Content-Type": content_type}
        )
        assert response.status_code == 422, content_type
        assert "set-cookie" not in response.headers
    assert auth.COOKIE not in client.cookies


# -- residents ----------------------------------------------------------------------------


def test_residents_cannot_read_tickets_entries_users_audit_or_answers(client, settings):
    account(settings, "kanri", "admin")  # an account and an audit event to (not) leak
    paths = [
        "/api/tickets",
        "/api/tickets/1",
        "/api/entries",
        "/api/entries/sodai-gomi/history",
        "/api/users",
        "/api/audit",
        "/api/answers?q=粗大ごみを出したい",
        "/api/changes",
        "/api/unanswered",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json() == {"detail": auth.NOT_LOGGED_IN}, path
        text = response.text
        for leak in ("sodai-gomi", "粗大ごみ", TICKET_SECRET_TEXT, "kanri", "transcript"):
            assert leak not in text, (path, leak)
    # The resident's conversation id is no credential.
    chat = client.post("/api/chat", json={"message": "粗大ごみを出したい"})
    assert chat.status_code == 200, chat.text
    session_id = chat.json()["session_id"]
    as_token = {"Authorization": f"Bearer {session_id}"}
    assert client.get("/api/tickets", headers=as_token).status_code == 401
    client.cookies.set(auth.COOKIE, session_id)
    assert client.get("/api/tickets").status_code == 401
