"""Bad input, at volume: hostile requests to every route, hostile files to the CLI.

Every reply must be a clear 4xx with a JSON ``detail`` (or, for a well-formed chat
message, a handled reply), never a 500; the CLI exits 1 with an ``error:`` line and no
traceback. Afterwards the database is intact and the API answers exactly as before.

Requests come with real credentials (an admin's bearer token and cookie session, a staff
token), with broken ones (wrong CSRF token) and with garbage (huge, non-ASCII, revoked,
of a disabled account): garbage never logs anyone in (401), too small a role is a 403.

Deterministic and bounded: one seeded ``random.Random`` picks every probe. The routes
come from ``app.routes``, so a new route is fuzzed as soon as it has a strategy here,
and the test fails until it has one.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from api.auth import COOKIE, SAFE_METHODS, authenticated
from api.main import create_app
from assistant.operations.config import Settings
from knowledge import accounts
from knowledge.io import import_entries
from knowledge.model import SCHEMA_FIELDS, entry_from_mapping
from knowledge.store import open_db
from knowledge.tickets import open_ticket
from tests.conftest import PASSWORD, STARTER, account, bearer, make_settings

# Well-formed chat messages while Rasa is unreachable: the engine answers (degraded mode).
# 429: the chat's rate limits (set far above what the fuzz sends, but a limit may answer).
CHAT_OK_STATUSES = frozenset({200, 429})
CLIENT_ERRORS = frozenset(range(400, 500))

SEED = 20260705
PROBES_PER_ROUTE = 30
# Accounts (password PASSWORD). Login probes use LOGIN_NAME and TOKEN_NAME only, so the
# failed logins they cause (5 per name in 15 minutes, then 429) lock out no other.
ADMIN = "fuzz-admin"  # the "with credentials" probes: an admin may call every route
STAFF = "fuzz-staff"  # too small a role for the editor and admin routes
LOGIN_NAME = "fuzz-login"  # a staff account, for the login route's well-formed bodies
TOKEN_NAME = "fuzz-token"  # the same, for the token route
SPARE = "fuzz-spare"  # an admin: fresh sessions for routes that end theirs (logout)
DISABLED = "fuzz-disabled"  # disabled after its token was issued
FUZZ_ACCOUNTS = frozenset({ADMIN, STAFF, LOGIN_NAME, TOKEN_NAME, SPARE, DISABLED})
# The login throttle counts failures per client address (20, then 429), and the test
# client has one: each login route's probes come from their own (ClientAddress).
LOGIN_CLIENTS = {"/api/auth/login": "fuzz-login-client", "/api/auth/token": "fuzz-token-client"}
# Stand-ins for the strategies' shape check; the fuzz uses conversation ids the app issued.
PLACEHOLDER_SESSIONS = ("fuzz-session-0001", "fuzz-session-0002")
CONVERSATION = "X-Conversation-Id"
MiB = 1024 * 1024
MAX_URL = 60_000  # the test client refuses longer URLs (and servers far shorter ones)
ABSENT = object()

# ---------------------------------------------------------------------------------------
# The hostile corpus
# ---------------------------------------------------------------------------------------

HOSTILE_TEXT: list[str] = [
    "",
    " ",
    " \t\n ",
    "\x00",
    "住民票\x00の写し",
    "a\x1b[2Jb",
    "\x7f\x08\x0c",
    "\r\n\r\n",
    "\u202e\u200b\ufeff",
    "\ud800",
    "\udfff住民票",
    "\udcff",
    "🙂" * 50,
    "'; DROP TABLE revisions; --",
    "1' OR '1'='1",
    '" OR ""="',
    "%' --",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "[x](javascript:alert(1))",
    "{{市名}}",
    "{{__class__}}",
    "${7*7}",
    "../../../etc/passwd",
    "%s%n%x",
    "a" * 10_000,
    "あ" * 10_000,
    "住民票 " * 2_000,
    "null",
    "0",
    "-1",
    "NaN",
    "9999-12-31",
    "0001-01-01",
    "2027-02-30",
]

WRONG_TYPES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**30,
    -(10**30),
    2**63,
    -(2**63) - 1,
    float("inf"),
    float("nan"),
    [],
    {},
    ["住民票"],
    [None, 1, {}],
    {"$ne": 1},
    {"nested": {"deeper": ["x"]}},
    [[[[[["deep"]]]]]],
    ["x"] * 10_000,
]

DEEP = 100_000


def nested(depth: int, inner: bytes = b"0") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# Bodies that are never a well-formed request, whatever the route.
RAW_BAD_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"message": '),
    ("not json", b"not json at all"),
    ("binary", bytes(range(256)) * 4),
    ("invalid utf-8", b"\xff\xfe\xfd garbage"),
    ("invalid utf-8 in a string", b'{"message": "\xff\xfe\xc0\xaf", "text": "\xed\xa0\x80"}'),
    ("nul", b"\x00"),
    ("json null", b"null"),
    ("json number", b"12345678901234567890123456789"),
    ("json string", b'"message"'),
    ("json list", b'["message", "text"]'),
    ("json true", b"true"),
    ("NaN", b"NaN"),
    ("deep list", nested(DEEP)),
    ("deep object", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    ("unclosed deep list", b"[" * DEEP),
    ("moderately deep list", nested(900)),
    ("5 MB of x", b"x" * (5 * MiB)),
    ("5 MB string", b'{"message": "' + b"a" * (5 * MiB) + b'"}'),
    ("10,000 keys", json.dumps({f"k{i}": i for i in range(10_000)}).encode()),
    ("utf-16", '{"message": "住民票"}'.encode("utf-16")),  # RFC 8259: UTF-8 only
    ("5,000-digit number", b'{"message": ' + b"1" * 5_000 + b', "to_revision": 1}'),
    ("BOM and a lone surrogate", b'\xef\xbb\xbf{"message": "\\ud800", "text": "\\udc00"}'),
]

WRONG_CONTENT_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "image/png",
    "application/json\x00",
    "application/jsonx",
]
JSON_CONTENT_TYPES = [
    "application/json; charset=latin-1",
    "application/vnd.api+json",
    "APPLICATION/JSON",
]


def enc(value: str) -> str:
    """A query or path value as it goes on the wire (lone surrogates as raw bytes)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


# Already encoded for the URL: numbers out of every range, junk, raw invalid UTF-8.
HOSTILE_PARAMS: list[str] = [
    enc(s)
    for s in [
        "",
        " ",
        "-1",
        "0",
        "1.5",
        "1e3",
        "0x10",
        "１",
        str(2**63 - 1),
        str(2**63),
        str(10**30),
        str(-(10**30)),
        "9" * 5_000,
        "NaN",
        "inf",
        "true",
        "null",
        "[]",
        "{}",
        "9999-12-31",
        "0001-01-01",
        "0000-00-00",
        "2027-02-30",
        "10000-01-01",
        "2027-04-01T25:00",
        "4月",
    ]
    + HOSTILE_TEXT
] + ["%00", "%FF%FE", "%ED%A0%80", "%C0%AE", "%0D%0A", "%E3%81"]

HOSTILE_SEGMENTS: list[str] = HOSTILE_PARAMS + ["..", "%2E%2E", "%2F", "a%2Fb", "."]

# ---------------------------------------------------------------------------------------
# Credentials: real ones, broken ones, garbage
# ---------------------------------------------------------------------------------------

Headers = list[tuple[bytes, bytes]]
AUTHORIZATION = b"authorization"
COOKIE_HEADER = b"cookie"
ROLE_RANK = {"login": 0, **accounts.RANK}  # "login": any account may (me, logout)


def _headers(mapping: dict[str, str]) -> Headers:
    return [(name.lower().encode(), value.encode()) for name, value in mapping.items()]


def cookie_headers(token: str, csrf: bytes | None) -> Headers:
    headers = [(COOKIE_HEADER, f"{COOKIE}={token}".encode())]
    return headers + ([(b"x-csrf-token", csrf)] if csrf is not None else [])


@dataclass
class Cred:
    """Request headers saying who calls, and what they should be allowed."""

    label: str
    headers: Headers
    role: str | None = None  # the account's role; None: these log nobody in
    csrf: bool = True  # False: a cookie session without its right X-CSRF-Token
    renew: Callable[[], Headers] | None = None  # the same, with a session of its own

    def may(self, role: str, method: str) -> bool:
        if self.role is None or ROLE_RANK[self.role] < ROLE_RANK[role]:
            return False
        return self.csrf or method in SAFE_METHODS


class Credentials:
    """The fuzz's accounts, tokens and sessions, made before the fuzz starts."""

    def __init__(self, settings: Settings, client: TestClient):
        self.settings = settings
        for name, role in (
            (LOGIN_NAME, "staff"),
            (TOKEN_NAME, "staff"),
            (SPARE, "admin"),
            (DISABLED, "editor"),
        ):
            account(settings, name, role)
        self.admin = _headers(bearer(settings, ADMIN, "admin"))
        self.staff = _headers(bearer(settings, STAFF, "staff"))
        self.admin_token = self.admin[0][1].split(b" ", 1)[1]
        # The cookie session as a page gets it: through the login route.
        login = client.post("/api/auth/login", json={"name": ADMIN, "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.cookie_token = login.cookies[COOKIE]
        self.csrf = login.json()["csrf_token"]
        client.cookies.clear()
        revoked = _headers(bearer(settings, SPARE, "admin"))
        self.disabled = _headers(bearer(settings, DISABLED, "editor"))
        db = open_db(settings.database_path)
        try:
            accounts.log_out(db, revoked[0][1].split(b" ", 1)[1].decode())
            accounts.set_disabled(db, DISABLED, True, actor="tests")
        finally:
            db.close()
        self.revoked = revoked

    @property
    def cookie(self) -> Headers:
        return cookie_headers(self.cookie_token, self.csrf.encode())

    def fresh_admin(self) -> Headers:
        return _headers(bearer(self.settings, SPARE, "admin"))

    def fresh_staff(self) -> Headers:
        return _headers(bearer(self.settings, STAFF, "staff"))

    def fresh_cookie(self, csrf: Callable[[str], bytes | None]) -> Callable[[], Headers]:
        def renew() -> Headers:
            db = open_db(self.settings.database_path)
            try:
                session = accounts.log_in(db, SPARE, PASSWORD, client="tests", kind="cookie")
            finally:
                db.close()
            return cookie_headers(session.token, csrf(session.csrf_token))

        return renew

    def valid(self) -> list[Cred]:
        """Credentials of an account (some without the CSRF token a cookie needs)."""

        def admin(label: str, change: Callable[[Headers], Headers]) -> Cred:
            return Cred(
                label, change(self.admin), "admin", renew=lambda: change(self.fresh_admin())
            )

        def cookie(label: str, csrf: Callable[[str], bytes | None], ok: bool) -> Cred:
            headers = cookie_headers(self.cookie_token, csrf(self.csrf))
            return Cred(label, headers, "admin", csrf=ok, renew=self.fresh_cookie(csrf))

        request_id = [(b"x-request-id", b"\x00\xff" + b"r" * 5_000)]
        return [  # drawn at random: the plain admin token and cookie most often
            admin("admin token", lambda h: h),
            admin("admin token", lambda h: h),
            admin("admin token", lambda h: h),
            admin("admin token, lower-case scheme", lambda h: [(h[0][0], b"b" + h[0][1][1:])]),
            admin("admin token, bogus request id", lambda h: h + request_id),
            admin("admin token, junk cookie", lambda h: h + [(COOKIE_HEADER, b"x=\xff")]),
            cookie("admin cookie", lambda c: c.encode(), True),
            cookie("admin cookie", lambda c: c.encode(), True),
            cookie("admin cookie, no CSRF token", lambda c: None, False),
            cookie("admin cookie, wrong CSRF token", lambda c: c[::-1].encode(), False),
            cookie("admin cookie, non-ascii CSRF token", lambda c: c.encode() + b"\xe9", False),
            cookie("admin cookie, huge CSRF token", lambda c: c.encode() * 300, False),
            Cred("staff token", self.staff, "staff", renew=self.fresh_staff),
        ]

    def garbage(self) -> list[Cred]:
        """Headers that must log nobody in: each is a 401 on a route that needs a login."""
        token, cookie = self.admin_token, self.cookie_token.encode()
        auth: list[tuple[str, bytes]] = [
            ("wrong token", b"Bearer wrong"),
            ("bare bearer", b"Bearer"),
            ("bearer and spaces", b"Bearer     "),
            ("basic auth", b"Basic Zm9vOmJhcg=="),
            ("token without a scheme", token),
            ("non-ascii token", b"Bearer \xe9\xff"),
            ("utf-8 token", "Bearer トークン".encode()),
            ("lone surrogate token", b"Bearer \xed\xa0\x80\xed\xb0\x80"),
            ("escaped lone surrogate token", b"Bearer \\ud800"),
            ("control characters in token", b"Bearer a\x00b\x1bc\x7f"),
            ("sql in token", b"Bearer ' OR '1'='1"),
            ("10,000-character token", b"Bearer " + b"x" * 10_000),
            ("100,000-character token", b"Bearer " + b"x" * 100_000),
            ("one character more than the admin token", b"Bearer " + token + b"x"),
            ("the admin token cut short", b"Bearer " + token[:-1]),
            ("session cookie as a bearer token", b"Bearer " + cookie),
        ]
        cookies: list[tuple[str, bytes]] = [
            ("non-ascii cookie", b"\xe9\xff"),
            ("utf-8 cookie", "セッション".encode()),
            ("lone surrogate cookie", b"\xed\xa0\x80"),
            ("escaped lone surrogate cookie", b'"\\355\\240\\200"'),
            ("percent-encoded lone surrogate cookie", b"%ED%A0%80"),
            ("10,000-character cookie", b"x" * 10_000),
            ("bearer token as a session cookie", token),
            ("session cookie and a character", cookie + b"x"),
        ]
        csrf = [(b"x-csrf-token", self.csrf.encode())]
        return (
            [Cred("anonymous", [])]
            + [Cred("the old stopgap user header", [(b"x-madoguchi-user", ADMIN.encode())])]
            + [Cred(label, [(AUTHORIZATION, value)]) for label, value in auth]
            + [
                Cred(label, [(COOKIE_HEADER, COOKIE.encode() + b"=" + v)] + csrf)
                for label, v in cookies
            ]
            + [
                Cred("revoked token", self.revoked),
                Cred("token of a disabled account", self.disabled),
                Cred(
                    "wrong bearer token, good cookie", [(AUTHORIZATION, b"Bearer x")] + self.cookie
                ),
                Cred("cookie named differently", [(COOKIE_HEADER, b"Madoguchi_Session=" + cookie)]),
                Cred("mangled cookie header", [(COOKIE_HEADER, b'=;;; madoguchi_session; ="\x01')]),
                Cred(
                    "2,000 cookies",
                    [(COOKIE_HEADER, b"; ".join(b"c%d=%d" % (i, i) for i in range(2_000)))],
                ),
            ]
        )


# ---------------------------------------------------------------------------------------
# Strategies: what is well-formed for each route (hostile variants are derived)
# ---------------------------------------------------------------------------------------


@dataclass
class Check:
    """One request with a known answer, sent with the admin's bearer token (``cookie``:
    the admin's cookie session and its CSRF token)."""

    expect: int | Iterable[int] | None  # None: anything below 500
    body: Any = ABSENT  # a JSON value, or bytes sent as they are; ABSENT: the first body
    path: dict[str, str] = field(default_factory=dict)  # raw values; others realistic
    query: dict[str, str] = field(default_factory=dict)  # raw values
    headers: dict[str, str] = field(default_factory=dict)  # raw values (Latin-1)
    cookie: bool = False
    verify: Callable[[Any], str | None] | None = None  # the JSON reply: a problem or None


@dataclass
class Strategy:
    path: dict[str, list[str]] = field(default_factory=dict)  # realistic path values
    query: dict[str, list[str]] = field(default_factory=dict)  # realistic query values
    # Header values, realistic and hostile; the first is sent by the sweep, any by the
    # random probes.
    headers: dict[str, list[str]] = field(default_factory=dict)
    bodies: list[dict] | None = None  # well-formed JSON bodies (None: no body)
    chat: bool = False  # well-formed bodies must answer CHAT_OK_STATUSES
    checks: list[Check] = field(default_factory=list)  # hostile input with a known answer
    revokes: bool = False  # a call ends the session it is made with: each gets its own
    client: str | None = None  # the client address the probes come from (ClientAddress)


def _draft(rng: random.Random) -> dict:
    n = rng.randrange(10**6)
    return {
        "id": f"fuzz-draft-{n}",
        "title": f"ファズの記事 {n}",
        "questions": [f"ファズの質問 {n} はどこで聞けますか"],
        "answer": "ファズの回答です。",
    }


GOOD_MESSAGES = [
    "住民票の写しはどこで取れますか",
    "粗大ごみを出したい",
    "'; DROP TABLE revisions; --",
    "<script>alert(1)</script>",
    "{{市名}}の{{代表電話}}",
    "あ" * 1000,
    "🙂🙂🙂",
    "税\tの\n払い方",
    "マイナンバーは1234 5678 9012です",
]


def made_up_ids(sessions: tuple[str, ...]) -> list[str]:
    """Conversation ids the server did not issue: well-formed, or tampered with."""
    real = sessions[0]
    return [
        "no-such-session",
        "fuzz-session-0001",
        "A" * 48,
        real[:-16] + "A" * 16,  # a random part with someone else's signature
        sessions[1][:-16] + real[-16:],
        real[:-1] + ("B" if real[-1] == "A" else "A"),
        real[:47],
    ]


def _chat_bodies(rng: random.Random, sessions: tuple[str, ...]) -> list[dict]:
    bodies = []
    for message in GOOD_MESSAGES:
        body: dict[str, Any] = {"message": message}
        roll = rng.random()
        if roll < 0.3:
            body["session_id"] = rng.choice(sessions)
        elif roll < 0.6:
            body["session_id"] = "fuzz" + "".join(rng.choice("abcdef0123456789") for _ in range(36))
        if rng.random() < 0.5:
            body["page"] = rng.choice(["", "https://www.example.lg.jp/", "<b>x</b>", "p" * 500])
        bodies.append(body)
    return bodies


def _reply_field(name: str, want: Callable[[Any], bool]) -> Callable[[Any], str | None]:
    def verify(reply: Any) -> str | None:
        value = reply.get(name) if isinstance(reply, dict) else None
        try:
            wanted = want(value)
        except (TypeError, ValueError):
            wanted = False
        return None if wanted else f"{name} is {str(value)[:80]!r}"

    return verify


def _chat_checks(sessions: tuple[str, ...]) -> list[Check]:
    question = "住民票の写しはどこで取れますか"
    checks = [
        # An id the server issued continues the conversation (here: a person has it).
        Check(
            200,
            {"message": question, "session_id": sessions[0]},
            verify=_reply_field("decision", lambda d: d == "handoff"),
        )
    ]
    for made_up in made_up_ids(sessions):
        if not 8 <= len(made_up) <= 64:
            continue
        # A made-up id starts a new conversation, under an id the server issues.
        checks.append(
            Check(
                200,
                {"message": question, "session_id": made_up},
                verify=_reply_field("session_id", lambda s, m=made_up: s not in (m, *sessions)),
            )
        )
    return checks


FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}


def _login_bodies(rng: random.Random, token: bool) -> list[dict]:
    name = TOKEN_NAME if token else LOGIN_NAME
    bodies = [
        {"name": name, "password": PASSWORD},
        {"name": name, "password": "wrong password, surely"},
        {"name": "nobody", "password": PASSWORD},
        {"name": name.upper(), "password": PASSWORD},
        {"name": "佐藤", "password": "パスワード" * 10},
    ]
    if token:
        for body in bodies:
            body["expires_in_s"] = rng.choice([60, 3600, 30 * 24 * 3600])
    return bodies


def _login_checks(token: bool) -> list[Check]:
    name = TOKEN_NAME if token else LOGIN_NAME
    good = {"name": name, "password": PASSWORD}
    # Successes first, before the failures below mount up (5 for a name, then 429).
    verify = _reply_field("token_type" if token else "csrf_token", bool)
    checks = [Check(200, good, verify=verify)]
    if token:
        # Lax integers: an exact float or a numeric string is the number.
        checks += [
            Check(200, {**good, "expires_in_s": value}, verify=verify)
            for value in (3600.0, "3600", 60, 30 * 24 * 3600)
        ]
        checks += [
            Check(422, {**good, "expires_in_s": value})
            for value in (59, 0, -1, 30 * 24 * 3600 + 1, 10**30, 2**63, -(2**63) - 1, 1.5, 1e308)
        ]
        checks += [
            Check(422, {**good, "expires_in_s": value})
            for value in (None, "", "1e3", "3600s", [3600], {"s": 3600}, "9" * 5_000)
        ]
        raw = json.dumps(good)[:-1].encode() + b', "expires_in_s": '
        checks += [Check(422, raw + value + b"}") for value in (b"NaN", b"Infinity", b"-Infinity")]
        checks += [
            Check(None, {**good, "expires_in_s": value}) for value in (True, "３６００", " 60 ")
        ]
    failed = {401, 429}  # wrong: 401, or 429 once the failures have mounted up
    return checks + [
        Check(422, {}),
        Check(422, {"name": name}),
        Check(422, {"password": PASSWORD}),
        Check(422, {"name": "", "password": PASSWORD}),
        Check(422, {"name": name, "password": ""}),
        Check(422, {"name": "a" * 65, "password": PASSWORD}),
        Check(422, {"name": "a" * 10_000, "password": "a" * 10_000}),
        Check(422, {"name": name, "password": "x" * 1025}),
        Check(422, {"name": 1, "password": PASSWORD}),
        Check(422, {"name": None, "password": None}),
        Check(422, {"name": [name], "password": PASSWORD}),
        Check(422, {"name": {"$ne": ""}, "password": {"$ne": ""}}),
        Check(422, {**good, "remember_me": True}),
        Check(422, {"name": "\ud800", "password": PASSWORD}),
        Check(422, [good]),
        Check(failed, {"name": "\x00", "password": PASSWORD}),
        Check(failed, {"name": "sato\x1b[2J\r\n", "password": PASSWORD}),
        Check(failed, {"name": "'; DROP TABLE users; --", "password": "' OR '1'='1"}),
        Check(failed, {"name": name.translate(FULLWIDTH), "password": PASSWORD}),
        Check(failed, {"name": name + "\u202e", "password": PASSWORD}),
        Check(failed, {"name": "あ" * 64, "password": "\x00" * 1024}),
        Check(failed, {"name": name, "password": "🙂" * 1024}),
        Check(failed, {"name": name, "password": " " + PASSWORD}),
    ]


def _propose_bodies(rng: random.Random) -> list[dict]:
    n = rng.randrange(10**6)
    return [
        {
            "id": f"fuzz-proposal-{n}",
            "title": "ファズの提案",
            "question": f"ファズの提案 {n} はどこで聞けますか",
            "answer": "ファズの提案の回答です。",
        },
        {},
        {"title": "ファズの提案", "answer": "窓口でお尋ねください。"},
        {"question": f"ファズの提案 {n + 1} はどこですか"},
        # A draft of a change to a published entry that no route below submits.
        {"id": "juminhyo-copy", "question": f"住民票の写し {n} はどこ"},
    ]


def _propose_checks() -> list[Check]:
    return [
        Check(404, {}, path={"ticket_id": "3"}),
        Check(422, {"id": "x" * 81}),
        Check(422, {"title": "t" * 201}),
        Check(422, {"question": "q" * 501}),
        Check(422, {"answer": "a" * 10_001}),
        Check(422, {"unknown": 1}),
        Check(422, {"id": 1, "title": ["t"], "question": {}, "answer": False}),
        Check(422, {"question": "\udc00"}),
        Check(422, ["question"]),
        Check(422, {"id": "Sodai Gomi"}),
        Check(422, {"id": "../../etc/passwd"}),
        Check(422, {"id": "'; DROP TABLE revisions; --"}),
        Check(None, {"id": ""}),
        Check(None, {"title": "\x00", "question": "\x1b[2J"}),
        Check(None, {"title": "   ", "question": "   ", "answer": "   "}),
        Check(None, {"answer": "<script>alert(1)</script><img src=x onerror=alert(1)>"}),
        Check(None, {"answer": "[x](javascript:alert(1)) {{__class__}} {{市名"}),
        Check(None, {"question": "住民票\n\n\nの写し", "answer": "a" * 10_000}),
        Check(None, {"id": "fuzz-proposal-long", "title": "あ" * 200, "question": "い" * 500}),
    ]


PREVIEW_QUESTION = "住民票の写しはどこで取れますか"


def _preview_checks(rng: random.Random) -> list[Check]:
    draft = _draft(rng)
    q = [PREVIEW_QUESTION]
    return [
        Check(200, {"questions": q}, cookie=True),
        Check(422, {"questions": []}),
        Check(422, {"questions": [PREVIEW_QUESTION] * 21}),
        Check(200, {"questions": [f"質問 {i}" for i in range(20)]}),
        Check(422, {"questions": [1, None, {}]}),
        Check(422, {"questions": PREVIEW_QUESTION}),
        Check(422, {"questions": None}),
        Check(422, {}),
        Check(422, {"questions": ["a" * 1001]}),
        Check(200, {"questions": ["a" * 1000]}),
        Check(422, {"questions": ["a" * 10_000] * 20}),
        Check(422, {"questions": ["住民票\x00"]}),
        Check(422, {"questions": ["\x1b[2J"]}),
        Check(422, {"questions": ["   "]}),
        Check(422, {"questions": ["\ud800"]}),
        Check(200, {"questions": ["🙂" * 1000]}),
        Check(None, {"questions": ["\u202e\u200b\ufeff"]}),
        Check(200, {"questions": ["'; DROP TABLE revisions; --", "<script>alert(1)</script>"]}),
        Check(422, {"questions": q, "unknown": 1}),
        Check(422, {"questions": q, "as_of": "2027-02-30"}),
        Check(422, {"questions": q, "as_of": 10**30}),
        Check(None, {"questions": q, "as_of": "9999-12-31"}),
        Check(None, {"questions": q, "as_of": "0001-01-01"}),
        Check(200, {"questions": q, "draft": None}),
        Check(422, {"questions": q, "draft": []}),
        Check(422, {"questions": q, "draft": "draft"}),
        Check(422, {"questions": q, "draft": {}}),
        Check(422, {"questions": q, "draft": {**draft, "id": 1}}),
        Check(422, {"questions": q, "draft": {**draft, "questions": "q"}}),
        Check(422, {"questions": q, "draft": {**draft, "answer": None}}),
        Check(422, {"questions": q, "draft": {**draft, "tags": [1, 2]}}),
        Check(422, {"questions": q, "draft": {**draft, "unknown": "x"}}),
        Check(422, {"questions": q, "draft": {**draft, "id": "x" * 81}}),
        Check(422, {"questions": q, "draft": {**draft, "valid_from": "2027-02-30"}}),
        Check(422, {"questions": q, "draft": {**draft, "title": "t\x00"}}),
        Check(422, {"questions": q, "draft": {**draft, "id": "../etc"}}),
        Check(None, {"questions": q, "draft": {**draft, "answer": "a" * 500_000}}),
        Check(None, {"questions": q, "draft": {**draft, "questions": ["q"] * 5_000}}),
        Check(None, {"questions": q, "draft": {**draft, "answer": "<script>alert(1)</script>"}}),
        Check(None, {"questions": q, "draft": {**draft, "answer": "[x](javascript:alert(1))"}}),
        Check(None, {"questions": q, "draft": {**draft, "answer": "{{__class__}}{{市名"}}),
        Check(None, {"questions": q, "draft": {**draft, "answer": "{{存在しない}} ${7*7}"}}),
        Check(None, {"questions": q, "draft": {**draft, "id": "sodai-gomi", "questions": q}}),
        Check(None, {"questions": q, "draft": {**draft, "valid_until": "0001-01-01"}}),
    ]


ENTRY_IDS = ["no-such-entry", "sodai-gomi"]
DATES = ["2027-04-01", "2026-01-01"]


def _query_checks(name: str, statuses: dict[int | None, list[str]]) -> list[Check]:
    return [
        Check(status, query={name: value})
        for status, values in statuses.items()
        for value in values
    ]


def strategies(
    rng: random.Random, sessions: tuple[str, ...] = PLACEHOLDER_SESSIONS
) -> dict[tuple[str, str], Strategy]:
    """One per (method, path). Entries the fuzz must not change legitimately (archive,
    rollback of a published entry) get no real ids; tickets may be claimed and resolved.
    ``sessions``: conversation ids the app issued, each with an open ticket."""
    tickets = {"ticket_id": ["1", "2", "3"]}
    notes = ["対応しました。", "<script>alert(1)</script>", "'; DROP TABLE tickets; --"]
    chat_ids = list(sessions) + made_up_ids(sessions)[:3]
    return {
        ("POST", "/api/auth/login"): Strategy(
            bodies=_login_bodies(rng, token=False),
            checks=_login_checks(token=False),
            client=LOGIN_CLIENTS["/api/auth/login"],
        ),
        ("GET", "/api/auth/me"): Strategy(
            checks=[
                Check(200, cookie=True, verify=_reply_field("name", lambda n: n == ADMIN)),
                Check(200, verify=_reply_field("name", lambda n: n == ADMIN)),
            ]
        ),
        ("GET", "/api/auth/sessions"): Strategy(checks=[Check(200), Check(200, cookie=True)]),
        ("DELETE", "/api/auth/sessions/{session_ref}"): Strategy(
            path={"session_ref": ["0123456789abcdef", "ffffffffffffffff"]},
            checks=[Check(404), Check(404, cookie=True)]
            + [
                Check(422, path={"session_ref": ref})
                for ref in ("0123456789ABCDEF", "0" * 17, "0" * 15, "..%00aaaaaaaaaaa")
            ],
        ),
        ("POST", "/api/auth/logout"): Strategy(
            revokes=True, checks=[Check(204), Check(204, cookie=True), Check(204, b"x" * 1000)]
        ),
        ("POST", "/api/auth/token"): Strategy(
            bodies=_login_bodies(rng, token=True),
            checks=_login_checks(token=True),
            client=LOGIN_CLIENTS["/api/auth/token"],
        ),
        ("POST", "/api/chat"): Strategy(
            bodies=_chat_bodies(rng, sessions), chat=True, checks=_chat_checks(sessions)
        ),
        ("GET", "/api/chat/messages"): Strategy(
            query={"after": ["0", "1", "3"]},
            headers={CONVERSATION: chat_ids + ["", "short", "x" * 65, "a b c d e f", "é" * 10]},
            checks=[Check(200, headers={CONVERSATION: s}) for s in sessions]
            + [Check(404, headers={CONVERSATION: s}) for s in made_up_ids(sessions)[:6]]
            + [Check(422, headers={CONVERSATION: s}) for s in ("short", "x" * 65, "a.b" * 10)]
            + [Check(422)],  # no id at all
        ),
        ("GET", "/api/answers"): Strategy(
            query={"q": ["住民票", "粗大ごみを出したい"], "k": ["1", "5", "20"], "as_of": DATES}
        ),
        ("GET", "/api/changes"): Strategy(
            query={"month": ["2027-04", "2026-01", "2025-12"]},
            checks=_query_checks(
                "month",
                {
                    200: ["2027-04", "0001-01", "9999-12", "0000-12"],
                    422: ["", "2027-13", "2027-00", "2027-4", "27-04", "2027-04-01", "2027/04"],
                    None: ["２０２７-04", "٢٠٢٧-04", "2027-04\n", "\ud800", "9" * 5_000 + "-01"],
                },
            )
            + [Check(200, cookie=True)],
        ),
        ("GET", "/api/tickets"): Strategy(
            query={"view": ["all", "new", "mine", "open", "resolved"], "limit": ["1", "500"]},
            checks=[Check(200, cookie=True)],
        ),
        ("GET", "/api/tickets/{ticket_id}"): Strategy(path=tickets),
        ("POST", "/api/tickets/{ticket_id}/claim"): Strategy(path=tickets),
        ("POST", "/api/tickets/{ticket_id}/reply"): Strategy(
            path=tickets,
            bodies=[{"text": t} for t in notes],
            checks=[Check(200, {"text": "クッキーのセッションから返信します。"}, cookie=True)],
        ),
        ("POST", "/api/tickets/{ticket_id}/resolve"): Strategy(
            path=tickets,
            bodies=[{"note": t} for t in notes]
            + [{}, {"entry_id": "no-such-entry"}]
            + [{"entry_id": "sodai-gomi", "question": q} for q in ("ソファを捨てたい", *notes)],
        ),
        ("POST", "/api/tickets/{ticket_id}/propose"): Strategy(
            path=tickets, bodies=_propose_bodies(rng), checks=_propose_checks()
        ),
        ("GET", "/api/entries"): Strategy(
            query={
                "status": ["draft", "published"],
                "category": ["ごみ"],
                "department": ["市民課"],
                "q": ["住民票"],
                "as_of": DATES,
                "upcoming": ["true", "false"],
            }
        ),
        ("POST", "/api/entries"): Strategy(bodies=[_draft(rng) for _ in range(5)]),
        ("GET", "/api/entries/{entry_id}/history"): Strategy(path={"entry_id": ENTRY_IDS}),
        ("POST", "/api/entries/{entry_id}/revisions/{revision}/submit"): Strategy(
            path={"entry_id": ENTRY_IDS, "revision": ["1", "2"]}
        ),
        ("POST", "/api/entries/{entry_id}/revisions/{revision}/approve"): Strategy(
            path={"entry_id": ENTRY_IDS, "revision": ["1", "2"]}
        ),
        ("POST", "/api/entries/{entry_id}/archive"): Strategy(
            path={"entry_id": ["no-such-entry"]}, bodies=[{"reason": "古い"}, {}]
        ),
        ("POST", "/api/entries/{entry_id}/rollback"): Strategy(
            path={"entry_id": ["no-such-entry"]}, bodies=[{"to_revision": 1}]
        ),
        ("POST", "/api/preview"): Strategy(
            bodies=[
                {"questions": [PREVIEW_QUESTION]},
                {"questions": ["粗大ごみを出したい", PREVIEW_QUESTION], "draft": _draft(rng)},
                {"questions": ["ファズの質問はどこで聞けますか"], "as_of": "2027-04-01"},
            ],
            checks=_preview_checks(rng),
        ),
        ("GET", "/api/unanswered"): Strategy(
            query={"days": ["1", "30", "366"]},
            checks=_query_checks(
                "days",
                {
                    200: ["1", "30", "366"],
                    422: ["0", "-1", "367", "1.5", "1e3", str(10**30), "", "NaN", "三十"],
                    None: ["３０", "030", " 30", "+30"],
                },
            ),
        ),
        ("GET", "/api/suggestions"): Strategy(
            query={
                "status": ["open", "accepted", "rejected"],
                "entry_id": ["sodai-gomi", "no-such-entry"],
                "preview": ["false", "true"],
            },
            checks=_query_checks(
                "status",
                {
                    200: ["open", "accepted", "rejected"],
                    422: ["", "all", "OPEN", "open ", "\ud800", "x" * 5_000],
                },
            )
            + _query_checks(
                "entry_id",
                {200: ["sodai-gomi", "../etc", "<b>", "'; --"], 422: ["", "x" * 81]},
            )
            + _query_checks("preview", {200: ["false", "0", "true"], 422: ["", "maybe", "\ud800"]})
            + [Check(200, cookie=True)],
        ),
        ("GET", "/api/suggestions/counts"): Strategy(
            checks=[Check(200), Check(200, cookie=True)],
        ),
        # No suggestion the fuzz can reach exists as an id: accept must never make a
        # revision here (the checks after the sweep allow only the fuzz's own drafts).
        ("POST", "/api/suggestions/accept"): Strategy(
            bodies=[
                {"entry_id": "sodai-gomi", "items": [{"id": 999_999}]},
                {"entry_id": "no-such-entry", "items": [{"id": 999_999, "text": "別の言い方"}]},
                {"entry_id": "sodai-gomi", "items": [{"id": 999_999}], "force": True},
            ],
            checks=[
                Check(404, {"entry_id": "sodai-gomi", "items": [{"id": 999_999}]}),
                Check(422, {"entry_id": "sodai-gomi", "items": []}),
                Check(422, {"entry_id": "", "items": [{"id": 1}]}),
                Check(422, {"entry_id": "sodai-gomi", "items": [{"id": 0}]}),
                Check(422, {"entry_id": "sodai-gomi", "items": [{"id": "1"}], "x": 1}),
                Check(422, {"entry_id": "sodai-gomi", "items": [{"id": 1}] * 101}),
                Check(None, {"entry_id": "sodai-gomi", "items": [{"id": 2**63}]}),
                Check(None, {"entry_id": "../etc", "items": [{"id": 1, "text": "<b>x</b>"}]}),
            ],
        ),
        ("POST", "/api/suggestions/reject"): Strategy(
            bodies=[{"ids": [999_999]}, {"ids": [999_998], "reason": "重複"}],
            checks=[
                Check(404, {"ids": [999_999]}),
                Check(422, {"ids": []}),
                Check(422, {"ids": [0]}),
                Check(422, {"ids": ["x"]}),
                Check(422, {"ids": [1] * 1001}),
                Check(422, {"ids": [999_999], "reason": "r" * 2001}),
                Check(None, {"ids": [999_999], "reason": "<script>alert(1)</script>"}),
            ],
        ),
        ("GET", "/api/users"): Strategy(
            checks=[
                Check(200, cookie=True),
                Check(200, verify=_reply_field("data", lambda d: len(d) == len(FUZZ_ACCOUNTS))),
            ]
        ),
        ("GET", "/api/audit"): Strategy(
            query={"limit": ["1", "200", "5000"]},
            checks=_query_checks(
                "limit",
                {
                    200: ["1", "200", "5000"],
                    422: ["0", "-1", "5001", str(2**63), "1.5", "", "all", "%"],
                    None: ["１", "0200"],
                },
            ),
        ),
        ("GET", "/api/health"): Strategy(),
        ("GET", "/api/chat/welcome"): Strategy(),
        ("GET", "/metrics"): Strategy(),
        ("GET", "/"): Strategy(),
        ("GET", "/widget.js"): Strategy(),
        ("GET", "/login"): Strategy(),
        ("GET", "/staff"): Strategy(),
        ("GET", "/editor"): Strategy(),
        ("GET", "/favicon.ico"): Strategy(),
        ("GET", "/openapi.json"): Strategy(),
        ("GET", "/widget-demo"): Strategy(),
        ("MOUNT", "/static"): Strategy(
            path={"path": ["chat.js", "chat.html", "madoguchi.css", "login.js", "nope.js"]}
        ),
    }


@dataclass(frozen=True)
class RouteShape:
    """What the application says a route takes, and the role it needs."""

    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    has_body: bool
    body_fields: tuple[str, ...] = ()
    role: str | None = None  # None: anonymous; "login": any account; else the least role


def _required_role(dependant) -> str | None:
    """The greatest role the route's dependencies require (``require_<role>``)."""
    roles: list[str] = []
    stack = list(getattr(dependant, "dependencies", []))
    while stack:
        dependency = stack.pop()
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            roles.append(name.removeprefix("require_"))
        elif dependency.call is authenticated:
            roles.append("login")
        stack.extend(dependency.dependencies)
    return max(roles, key=ROLE_RANK.__getitem__) if roles else None


def route_shapes(app) -> list[RouteShape]:
    shapes = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            shapes.append(RouteShape("MOUNT", route.path, ("path",), (), False))
            continue
        dependant = getattr(route, "dependant", None)
        path_params = tuple(p.name for p in dependant.path_params) if dependant else ()
        query = tuple(p.alias for p in dependant.query_params) if dependant else ()
        body_field = getattr(route, "body_field", None)
        model = getattr(getattr(body_field, "field_info", None), "annotation", None)
        fields = tuple(getattr(model, "model_fields", {}))
        role = _required_role(dependant)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            shapes.append(
                RouteShape(
                    method, route.path, path_params, query, body_field is not None, fields, role
                )
            )
    return shapes


def strategy_problems(shapes: list[RouteShape], plan: dict) -> list[str]:
    problems = []
    for shape in shapes:
        strategy = plan.get((shape.method, shape.path))
        if strategy is None:
            problems.append(
                f"{shape.method} {shape.path}: no fuzz strategy in tests/fuzz/test_fuzz.py"
            )
            continue
        if set(strategy.path) != set(shape.path_params):
            problems.append(f"{shape.method} {shape.path}: path params {shape.path_params}")
        if not set(strategy.query) <= set(shape.query_params):
            problems.append(f"{shape.method} {shape.path}: query params {shape.query_params}")
        if (strategy.bodies is not None) != shape.has_body:
            problems.append(f"{shape.method} {shape.path}: body {shape.has_body}")
        for check in strategy.checks:
            if not set(check.path) <= set(shape.path_params):
                problems.append(f"{shape.method} {shape.path}: a check's path {check.path}")
            if not set(check.query) <= set(shape.query_params):
                problems.append(f"{shape.method} {shape.path}: a check's query {check.query}")
    return problems


# ---------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------


@dataclass
class Probe:
    method: str
    url: str
    headers: Headers
    body: bytes | None
    expect: frozenset[int] | None  # None: anything below 500
    label: str
    verify: Callable[[Any], str | None] | None = None

    def describe(self) -> str:
        size = "" if self.body is None else f", body {len(self.body)} bytes {self.body[:80]!r}"
        return f"{self.method} {self.url[:160]} [{self.label}]{size}"


def _json(value: Any, rng: random.Random) -> bytes:
    # ensure_ascii escapes lone surrogates as \ud800, as a client would send them.
    return json.dumps(value, ensure_ascii=rng.random() < 0.7).encode("utf-8", "surrogatepass")


def _mutated_body(rng: random.Random, base: dict) -> tuple[str, bytes, str | None]:
    """(kind, bytes, content type); kind: good, bad (never well-formed) or any."""
    body = dict(base)
    roll = rng.random()
    if roll < 0.15:
        return "good", _json(body, rng), "application/json"
    if roll < 0.35 and body:
        name = rng.choice(sorted(body))
        body[name] = rng.choice(WRONG_TYPES)
        return f"any: {name} wrong type", _json(body, rng), "application/json"
    if roll < 0.6:
        name = rng.choice(sorted(body) or ["message"])
        body[name] = rng.choice(HOSTILE_TEXT)
        return f"any: {name} hostile text", _json(body, rng), "application/json"
    if roll < 0.65 and body:
        body.pop(rng.choice(sorted(body)))
        return "any: field missing", _json(body, rng), "application/json"
    if roll < 0.7:
        body[rng.choice(["extra", "__proto__", "id'; --", "revision"])] = rng.choice(WRONG_TYPES)
        return "any: unknown field", _json(body, rng), "application/json"
    if roll < 0.75 and body:
        # Duplicate keys: the second value is hostile.
        name = rng.choice(sorted(body))
        raw = _json(body, rng)[:-1] + b", " + json.dumps(name).encode() + b": "
        raw += _json(rng.choice(WRONG_TYPES), rng) + b"}"
        return "any: duplicate key", raw, "application/json"
    if roll < 0.8 and body:
        name = rng.choice(sorted(body))
        inner = json.dumps({k: v for k, v in body.items() if k != name}).encode()
        value = nested(rng.choice([50, 400, 900, 5_000]), b'"x"')
        raw = b"{" + json.dumps(name).encode() + b": " + value
        raw += (b", " + inner[1:]) if len(inner) > 2 else b"}"
        return "any: deeply nested field", raw, "application/json"
    if roll < 0.82:
        return "bad: wrong content type", _json(base, rng), rng.choice(WRONG_CONTENT_TYPES)
    if roll < 0.85:
        return "any: JSON, differently named", _json(base, rng), rng.choice(JSON_CONTENT_TYPES)
    if roll < 0.9:
        value = rng.choice(WRONG_TYPES[:14])
        return "bad: whole body wrong type", _json(value, rng), "application/json"
    label, raw = rng.choice(RAW_BAD_BODIES)
    return f"bad: {label}", raw, "application/json"


def _segment(rng: random.Random, realistic: list[str]) -> str:
    return (
        rng.choice(realistic) if realistic and rng.random() < 0.4 else rng.choice(HOSTILE_SEGMENTS)
    )


def _headers(values: dict[str, str]) -> Headers:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in values.items()]


def _first_headers(strategy: Strategy) -> Headers:
    return _headers({name: values[0] for name, values in strategy.headers.items()})


def _query(rng: random.Random, strategy: Strategy) -> str:
    pairs = []
    for name, values in strategy.query.items():
        roll = rng.random()
        if roll < 0.15:
            continue
        value = rng.choice(values) if roll < 0.45 else rng.choice(HOSTILE_PARAMS)
        pairs.append(f"{name}={enc(value) if roll < 0.45 else value}")
        if rng.random() < 0.1:  # repeated parameter
            pairs.append(f"{name}={rng.choice(HOSTILE_PARAMS)}")
    if rng.random() < 0.2:
        pairs.append(
            f"{rng.choice(['x', 'k[]', '%00', 'q%FF', 'a' * 300])}={rng.choice(HOSTILE_PARAMS)}"
        )
    return "&".join(pairs)


def _fill(shape: RouteShape, values: dict[str, str]) -> str:
    if shape.method == "MOUNT":
        return f"{shape.path}/{values['path']}"
    url = shape.path
    for name in shape.path_params:
        url = url.replace("{" + name + "}", values[name])
    return url


def _expect(
    strategy: Strategy, shape: RouteShape, method: str, kind: str, cred: Cred
) -> frozenset[int] | None:
    if shape.role is not None and not cred.may(shape.role, method):
        return CLIENT_ERRORS  # whatever the input: never served
    if not (strategy.chat and method == "POST"):
        return None
    if kind == "good":
        return CHAT_OK_STATUSES
    if kind.startswith("bad"):
        return CLIENT_ERRORS
    return CHAT_OK_STATUSES | CLIENT_ERRORS


# Each route gets these at least once, with the token, whatever the random draw.
SWEEP_PARAMS = [
    enc(s)
    for s in (str(2**63 - 1), str(2**63), str(10**30), str(-(2**63) - 1), "-1", "1e3", "9" * 5_000)
] + ["", "%ED%A0%80", "%FF", "%00", "9999-12-31", "0001-01-01"]
SWEEP_VALUES: list[Any] = [
    None,
    10**30,
    2**63,
    float("nan"),
    [],
    {"$ne": 1},
    "\ud800",
    "住民票\x00",
    "a" * 10_000,
    ["x"] * 10_000,
]
JSON_TYPE = [(b"content-type", b"application/json")]
GARBAGE_PER_ROUTE = 8  # besides anonymous; in turn, so every kind reaches several routes


class Prober:
    """Every probe for a route: the sweep, the checks, the credentials, then random ones."""

    def __init__(self, rng: random.Random, creds: Credentials):
        self.rng = rng
        self.creds = creds
        self.valid = creds.valid()
        self.garbage = creds.garbage()
        self.admin_cred = self.valid[0]  # what the sweep and checks send
        self.staff = next(c for c in self.valid if c.role == "staff")
        self.cookie = next(c for c in self.valid if c.label == "admin cookie")
        self.turn = 0  # the garbage credentials the next route gets start here

    def admin(self, strategy: Strategy, cookie: bool = False) -> Headers:
        if cookie:
            return self.cookie.renew() if strategy.revokes else self.cookie.headers
        return self.creds.fresh_admin() if strategy.revokes else self.creds.admin

    def probes(self, shape: RouteShape, strategy: Strategy) -> Iterator[Probe]:
        address = [(CLIENT_HEADER, strategy.client.encode())] if strategy.client else []
        for probe in self._probes(shape, strategy):
            probe.headers = probe.headers + address
            yield probe

    def _probes(self, shape: RouteShape, strategy: Strategy) -> Iterator[Probe]:
        yield from self.sweep(shape, strategy)
        yield from self.checks(shape, strategy)
        yield from self.credentials(shape, strategy)
        for _ in range(PROBES_PER_ROUTE):
            yield self.random(shape, strategy)

    def sweep(self, shape: RouteShape, strategy: Strategy) -> Iterator[Probe]:
        method = "GET" if shape.method == "MOUNT" else shape.method
        realistic = {name: values[0] for name, values in strategy.path.items()}
        base = strategy.bodies[0] if strategy.bodies else None
        good = None if base is None else json.dumps(base).encode()
        params = [(name, "path") for name in strategy.path]
        params += [(name, "query") for name in strategy.query]
        for name, where in params:
            for value in SWEEP_PARAMS:
                if where == "path":
                    url = _fill(shape, {**realistic, name: value})
                else:
                    url = f"{_fill(shape, realistic)}?{name}={value}"
                headers = self.admin(strategy) + JSON_TYPE + _first_headers(strategy)
                yield Probe(method, url, headers, good, None, f"sweep {where} {name}")
        if base is None:
            return
        url = _fill(shape, realistic)
        for label, raw in RAW_BAD_BODIES:
            expect = _expect(strategy, shape, method, "bad", self.admin_cred)
            headers = self.admin(strategy) + JSON_TYPE
            yield Probe(method, url, headers, raw, expect, f"sweep body {label}")
        for name in shape.body_fields:
            for value in SWEEP_VALUES:
                body = json.dumps({**base, name: value}).encode()
                expect = _expect(strategy, shape, method, "any", self.admin_cred)
                headers = self.admin(strategy) + JSON_TYPE
                yield Probe(method, url, headers, body, expect, f"sweep body field {name}")

    def checks(self, shape: RouteShape, strategy: Strategy) -> Iterator[Probe]:
        realistic = {name: values[0] for name, values in strategy.path.items()}
        for check in strategy.checks:
            url = _fill(shape, {**realistic, **{k: enc(v) for k, v in check.path.items()}})
            if check.query:
                url += "?" + "&".join(f"{k}={enc(v)}" for k, v in check.query.items())
            body = check.body
            if body is ABSENT:
                body = strategy.bodies[0] if strategy.bodies else None
            raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            expect = check.expect
            if isinstance(expect, int):
                expect = frozenset({expect})
            elif expect is not None:
                expect = frozenset(expect)
            headers = self.admin(strategy, check.cookie) + JSON_TYPE + _headers(check.headers)
            label = f"check{' with the cookie' if check.cookie else ''}"
            yield Probe(shape.method, url, headers, raw, expect, label, check.verify)

    def credentials(self, shape: RouteShape, strategy: Strategy) -> Iterator[Probe]:
        """A well-formed request with garbage credentials is a 401; with too small a role
        or (a change made with the cookie) without the right CSRF token, a 403."""
        if shape.role is None:
            return
        realistic = {name: values[0] for name, values in strategy.path.items()}
        url = _fill(shape, realistic)
        body = json.dumps(strategy.bodies[0]).encode() if strategy.bodies else None
        # Anonymous, and the next few kinds of garbage in turn: each is sent to several
        # routes, and every route to several.
        anonymous, others = self.garbage[0], self.garbage[1:]
        turn = [others[(self.turn + i) % len(others)] for i in range(GARBAGE_PER_ROUTE)]
        self.turn += GARBAGE_PER_ROUTE
        sent = [(c, frozenset({401})) for c in [anonymous, *turn]]
        if ROLE_RANK[shape.role] > ROLE_RANK["staff"]:
            sent.append((self.staff, frozenset({403})))
        if shape.method not in SAFE_METHODS:
            sent += [(c, frozenset({403})) for c in self.valid if not c.csrf]
        for cred, expect in sent:
            headers = (
                cred.renew() if strategy.revokes and cred.renew else cred.headers
            ) + JSON_TYPE
            yield Probe(shape.method, url, headers, body, expect, f"credentials: {cred.label}")

    def random(self, shape: RouteShape, strategy: Strategy) -> Probe:
        rng = self.rng
        cred = rng.choice(self.valid if rng.random() < 0.5 else self.garbage)
        headers = cred.renew() if strategy.revokes and cred.renew else cred.headers
        method = shape.method if shape.method != "MOUNT" else "GET"
        if rng.random() < 0.05:
            method = rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "POST", "GET"])
        if shape.method == "MOUNT":
            url = shape.path + "/" + _segment(rng, strategy.path["path"])
            if rng.random() < 0.3:
                url = shape.path + rng.choice(
                    [
                        "/../api/health",
                        "/%2e%2e/%2e%2e/etc/passwd",
                        "/" + "a" * 5_000,
                        "//",
                        "/chat.js%00.png",
                    ]
                )
        else:
            url = shape.path
            for name in shape.path_params:
                url = url.replace("{" + name + "}", _segment(rng, strategy.path[name]))
        query = _query(rng, strategy)
        if query:
            url += "?" + query
        url = url[:MAX_URL]
        headers = headers + _headers(
            {name: rng.choice(values) for name, values in strategy.headers.items()}
        )
        kind, body, content_type = "any", None, None
        if strategy.bodies is not None:
            kind, body, content_type = _mutated_body(rng, rng.choice(strategy.bodies))
        elif rng.random() < 0.1:
            _, body = rng.choice(RAW_BAD_BODIES)
            content_type = "application/json"
        if content_type is not None:
            headers = headers + [(b"content-type", content_type.encode("latin-1"))]
        expect = _expect(strategy, shape, method, kind, cred)
        return Probe(method, url, headers, body, expect, f"{cred.label}; {kind}")


def check(probe: Probe, response) -> str | None:
    status = response.status_code
    if probe.expect is not None and status not in probe.expect:
        return f"{status} (expected {sorted(probe.expect)[:3]}...): {response.text[:300]}"
    if status >= 500 and status not in (probe.expect or ()):
        return f"{status}: {response.text[:300]}"
    if 400 <= status < 500:
        try:
            detail = response.json()["detail"]
        except (ValueError, KeyError, TypeError):
            return f"{status} without a JSON detail: {response.text[:200]!r}"
        if not detail:
            return f"{status} with an empty detail"
    if probe.verify is not None and status < 300:
        return probe.verify(response.json())
    return None


# ---------------------------------------------------------------------------------------
# The database before and after
# ---------------------------------------------------------------------------------------


def db_state(path: Path) -> dict:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row

        def rows(table: str, order: str = "rowid") -> list[tuple]:
            return [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]

        return {
            "revisions": {
                (row["entry_id"], row["revision"]): dict(row)
                for row in conn.execute("SELECT * FROM revisions")
            },
            "kb_meta": rows("kb_meta", "key"),
            "audit": rows("audit", "id"),
            "tickets": rows("tickets", "id"),
            "chat_messages": rows("chat_messages", "id"),
            "users": rows("users", "name"),
            "auth_sessions": {
                row["token_hash"]: dict(row) for row in conn.execute("SELECT * FROM auth_sessions")
            },
            "login_failures": rows("login_failures", "id"),
        }


def integrity_problems(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        problems = []
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            problems.append(f"integrity_check: {integrity}")
        foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
        if foreign:
            problems.append(f"foreign_key_check: {foreign}")
        return problems


def _content(row: dict) -> dict:
    content = {name: row.get(name) for name in SCHEMA_FIELDS if name != "id"}
    for name in ("questions", "documents", "tags"):
        content[name] = json.loads(content[name] or "[]")
    return {"id": row["entry_id"], **content}


# ---------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def template_home(tmp_path_factory) -> Path:
    """One starter home with its index built; each test works on a copy (building the
    index costs seconds, copying it milliseconds)."""
    from assistant.retrieval.engine import Engine

    settings = make_settings(tmp_path_factory.mktemp("fuzz") / "home")
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    Engine.load(settings)
    return settings.home


@pytest.fixture
def starter_home(template_home, tmp_path) -> Settings:
    shutil.copytree(template_home, tmp_path / "home")
    return make_settings(tmp_path / "home")


@pytest.fixture
def cheap_passwords(monkeypatch):
    """scrypt at 1/32 of its cost for the accounts made here (their hashes say so) and
    for unknown names: the fuzz is about input, and each full hash takes 0.3 s."""
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**10)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", None)


@pytest.fixture
def fuzz_settings(starter_home, unused_port, cheap_passwords):
    return make_settings(
        starter_home.home,
        MADOGUCHI_RASA_PORT=str(unused_port),
        # One client sends everything: the chat's limits would make the fuzz all 429s.
        MADOGUCHI_CHAT_RATE_PER_CLIENT=str(10**6),
        MADOGUCHI_CHAT_RATE_PER_SESSION=str(10**6),
    )


CLIENT_HEADER = b"x-fuzz-client"


class ClientAddress:
    """The app, seeing the client address a request names in X-Fuzz-Client (a test's
    stand-in for many clients: the test client has one address)."""

    def __init__(self, app):
        self.app = app

    def __getattr__(self, name: str):  # routes, state: the app's
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == CLIENT_HEADER:
                    scope = {**scope, "client": (value.decode("latin-1"), 1)}
        await self.app(scope, receive, send)


@pytest.fixture
def client(fuzz_settings):
    app = ClientAddress(create_app(fuzz_settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def sessions(client, fuzz_settings) -> tuple[str, ...]:
    """Two conversations the app issued, each handed to a person (an open ticket)."""
    issued = tuple(client.app.state.session_ids.issue() for _ in range(2))
    db = open_db(fuzz_settings.database_path)
    for session in issued:
        open_ticket(
            db,
            session_id=session,
            reason="two_failed_turns",
            transcript=[{"role": "resident", "text": "明日の天気は？"}],
            candidates=[],
            page="https://www.example.lg.jp/",
        )
    db.close()
    return issued


@pytest.fixture
def creds(client, fuzz_settings) -> Credentials:
    return Credentials(fuzz_settings, client)


LOOKUP = {"q": "粗大ごみを出したい", "k": "3"}


def test_every_route_has_a_fuzz_strategy():
    app = create_app(make_settings(Path("/nonexistent")))
    shapes = route_shapes(app)
    assert shapes, "no routes found in app.routes"
    assert strategy_problems(shapes, strategies(random.Random(SEED))) == []
    # The role each route needs, as docs/api.md says: a route that lost its check shows.
    roles = {(s.method, s.path): s.role for s in shapes}
    assert roles[("POST", "/api/chat")] is None
    assert roles[("POST", "/api/auth/login")] is None
    assert roles[("GET", "/api/auth/me")] == "login"
    assert roles[("GET", "/api/answers")] == "staff"
    assert roles[("POST", "/api/tickets/{ticket_id}/propose")] == "staff"
    assert roles[("POST", "/api/preview")] == "editor"
    assert roles[("GET", "/api/unanswered")] == "editor"
    assert roles[("GET", "/api/users")] == roles[("GET", "/api/audit")] == "admin"
    assert all(role for (method, path), role in roles.items() if path.startswith("/api/entries"))


def _new_audit(path: Path, after_id: int) -> list[dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM audit WHERE id > ?", [after_id])]


def test_every_route_answers_hostile_input_with_a_clear_4xx(client, fuzz_settings, sessions, creds):
    rng = random.Random(SEED)
    plan = strategies(rng, sessions)
    shapes = route_shapes(client.app)
    assert strategy_problems(shapes, plan) == []
    admin = creds.admin
    lookup_before = client.get("/api/answers", params=LOOKUP, headers=admin)
    assert lookup_before.status_code == 200, lookup_before.text
    before = db_state(fuzz_settings.database_path)
    last_audit = before["audit"][-1][0]

    prober = Prober(rng, creds)
    failures: list[str] = []
    sent = 0
    started = time.perf_counter()
    for shape in shapes:
        for probe in prober.probes(shape, plan[(shape.method, shape.path)]):
            response = client.request(
                probe.method, probe.url, headers=probe.headers, content=probe.body
            )
            client.cookies.clear()  # a login's cookie must not ride on the next probe
            sent += 1
            problem = check(probe, response)
            if problem:
                failures.append(f"{probe.describe()}\n    -> {problem}")
    elapsed = time.perf_counter() - started
    print(f"fuzz: {sent} requests in {elapsed:.1f} s, {len(failures)} failures")
    assert not failures, f"{len(failures)} of {sent} probes failed:\n" + "\n".join(failures[:40])

    # The database is intact; answers and published entries are exactly as before.
    path = fuzz_settings.database_path
    assert integrity_problems(path) == []
    after = db_state(path)
    assert after["kb_meta"] == before["kb_meta"]
    for key, row in before["revisions"].items():
        assert after["revisions"][key] == row, f"revision {key} changed"
    new_events = _new_audit(path, last_audit)
    proposed = {
        (e["entry_id"], e["revision"]) for e in new_events if e["action"] == "ticket.propose"
    }
    for key, row in after["revisions"].items():
        if key in before["revisions"]:
            continue
        # Drafts the fuzz saved (an editor) or proposed from a ticket (staff): drafts
        # only, by the fuzz's accounts, and valid entries.
        assert row["status"] == "draft", (key, row["status"])
        assert row["author"] in (ADMIN, STAFF), (key, row["author"])
        if key[0].startswith("fuzz-draft-"):
            assert row["author"] == ADMIN, (key, "a staff token saved a draft")
        else:
            assert key in proposed, (key, "a new revision that no proposal made")
        entry_from_mapping(_content(row))
    # Proposals were made (with the realistic ticket ids), and are drafts only.
    assert proposed and all(after["revisions"][key]["status"] == "draft" for key in proposed)
    assert after["audit"][: len(before["audit"])] == before["audit"]
    for event in new_events:
        action = event["action"]
        assert action not in ("publish", "archive") and not action.startswith("rollback"), event
        assert not action.startswith("user_"), event
    # Accounts are as they were; failed logins were only added, from the login routes'
    # own client addresses, and none for the accounts the fuzz logs in with.
    assert after["users"] == before["users"]
    failed = after["login_failures"]
    assert failed[: len(before["login_failures"])] == before["login_failures"]
    for _, name, address, _ in failed[len(before["login_failures"]) :]:
        assert address in LOGIN_CLIENTS.values(), (name, address)
        assert name not in (ADMIN, STAFF, SPARE), (name, address)
    for token_hash, row in after["auth_sessions"].items():
        assert row["user"] in FUZZ_ACCOUNTS - {DISABLED}, row
        if token_hash in before["auth_sessions"]:
            assert row == before["auth_sessions"][token_hash]
    # The admin's token and cookie session still work; nothing logged them out.
    for headers in (admin, creds.cookie):
        me = client.get("/api/auth/me", headers=headers)
        assert me.status_code == 200 and me.json()["name"] == ADMIN, me.text
    # Tickets the fuzz claimed, replied to or resolved still read whole.
    listed = client.get("/api/tickets", params={"view": "all", "limit": 500}, headers=admin)
    assert listed.status_code == 200, listed.text
    for ticket in listed.json()["data"]:
        assert ticket["status"] in ("open", "resolved")
        assert client.get(f"/api/tickets/{ticket['id']}", headers=admin).status_code == 200
    lookup_after = client.get("/api/answers", params=LOOKUP, headers=admin)
    assert lookup_after.status_code == 200
    assert lookup_after.json() == lookup_before.json()


# ---------------------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------------------

GOOD_ENTRY = {
    "id": "fuzz-cli",
    "title": "ファズ",
    "questions": ["ファズの質問はどこで聞けますか"],
    "answer": "ファズの回答です。",
}
CSV_HEADER = "id,title,questions,answer"


def _cli_files(rng: random.Random, folder: Path) -> list[tuple[str, Path]]:
    """(format, file) pairs of garbage, deterministic for the seed."""
    folder.mkdir()
    made: list[tuple[str, Path]] = []

    def write(fmt: str, name: str, data: bytes | str) -> None:
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        made.append((fmt, path))

    ten_mb = "x" * (10 * MiB)
    for fmt in ("jsonl", "yaml", "csv"):
        write(fmt, f"binary.{fmt}", rng.randbytes(4096))
        write(fmt, f"invalid-utf8.{fmt}", b"id: \xff\xfe\n\xc0\xaf" * 10)
        write(fmt, f"empty.{fmt}", b"")
        write(fmt, f"nul.{fmt}", b"\x00" * 100)
    write("jsonl", "deep.jsonl", nested(DEEP))
    write("jsonl", "deep-field.jsonl", json.dumps(GOOD_ENTRY)[:-1] + ', "tags": ' + "[" * 5_000)
    write("jsonl", "ten-mb-line.jsonl", json.dumps({**GOOD_ENTRY, "answer": ten_mb}))
    write("jsonl", "huge-number.jsonl", '{"id": ' + "1" * 5_000 + "}")
    write("jsonl", "nan.jsonl", '{"id": NaN, "title": Infinity}')
    write("jsonl", "not-objects.jsonl", '[]\n1\nnull\n"x"\n')
    write("yaml", "deep.yaml", "[" * 1_000)
    write("yaml", "deep-map.yaml", "".join(" " * i + "a:\n" for i in range(2_000)))
    write("yaml", "long-line.yaml", "- answer: " + "y" * 100_000)  # PyYAML reads 1 MB/s
    write(
        "yaml",
        "bad-date.yaml",
        "- id: a\n  title: t\n  questions: [q]\n  answer: a\n  valid_from: 2027-02-30\n",
    )
    write("yaml", "odd-keys.yaml", "- id: a\n  1: x\n  ~: y\n  [a, b]: z\n")
    write("yaml", "mixed-keys.yaml", "- id: a\n  title: t\n  1: x\n  zz: y\n  ~: n\n")
    write("yaml", "bad-int.yaml", "- id: !!int abc\n")
    write("yaml", "python-tag.yaml", "- !!python/object/apply:os.system ['echo pwned']\n")
    write("yaml", "aliases.yaml", "- &a [x, x, x, x]\n- &b [*a, *a, *a, *a]\n- [*b, *b, *b, *b]\n")
    write("yaml", "not-a-list.yaml", "just text")
    write("csv", "wrong-columns.csv", "foo,bar\r\n1,2\r\n")
    write("csv", "missing-columns.csv", "id,title\r\na,t\r\n")
    write("csv", "extra-cells.csv", f"{CSV_HEADER}\r\na,t,q,a,EXTRA,MORE\r\n")
    write("csv", "short-row.csv", f"{CSV_HEADER}\r\na,t\r\n")
    write("csv", "ten-mb-cell.csv", f'{CSV_HEADER}\r\na,t,q,"{ten_mb}"\r\n')
    write("csv", "nul-cell.csv", f"{CSV_HEADER}\r\na,t\x00,q,a\r\n")
    write("csv", "unclosed-quote.csv", f'{CSV_HEADER}\r\na,"t,q,a\r\n')
    # Wrong types, one field at a time, in every format.
    for number in range(12):
        field_name = rng.choice(SCHEMA_FIELDS)
        value = rng.choice(WRONG_TYPES[:-1] + HOSTILE_TEXT)
        record = {**GOOD_ENTRY, "id": f"fuzz-cli-{number}", field_name: value}
        line = json.dumps(record, ensure_ascii=True)
        write("jsonl", f"wrong-{number}-{field_name}.jsonl", line)
        text = json.dumps([record], ensure_ascii=True)  # JSON is YAML
        write("yaml", f"wrong-{number}-{field_name}.yaml", text)
        cells = [str(record.get(name, "")) for name in ("id", "title", "questions", "answer")]
        cell_line = ",".join('"' + c.replace('"', '""') + '"' for c in cells)
        write("csv", f"wrong-{number}-{field_name}.csv", f"{CSV_HEADER}\r\n{cell_line}\r\n")
    return made


def _cli_searches(rng: random.Random, folder: Path) -> list[list[str]]:
    texts = [
        "",
        " ",
        "住民票\x00",
        "a\x1b[2Jb",
        "あ" * 10_000,
        "\udcff住民票",
        "'; DROP TABLE revisions; --",
        "<script>alert(1)</script>",
    ] + rng.sample(HOSTILE_TEXT, 6)
    runs = [["search", text] for text in texts] + [["search", "住民票", "--json"]]
    batches = {
        "binary.jsonl": rng.randbytes(2048),
        "invalid-utf8.jsonl": b'{"id": 1, "text": "\xff"}\n',
        "deep.jsonl": nested(DEEP),
        "huge-number.jsonl": b'{"id": ' + b"1" * 5_000 + b', "text": "x"}\n',
        "surrogate.jsonl": b'{"id": 1, "text": "\\ud800"}\n{"id": "\\udc00", "text": "x"}\n',
        "control.jsonl": b'{"id": 1, "text": "\\u0000\\u001b"}\n',
        "wrong-types.jsonl": b'{"id": [], "text": 5}\n{"id": null}\n[1]\n"x"\nNaN\n',
        "ten-mb-line.jsonl": b'{"id": 1, "text": "' + b"x" * (10 * MiB) + b'"}\n',
        "empty.jsonl": b"",
        "valid.jsonl": '{"id": "q1", "text": "粗大ごみを出したい"}\n'.encode(),
    }
    for name, data in batches.items():
        (folder / name).write_bytes(data)
        runs.append(["search", "--batch", str(folder / name)])
    runs.append(["search", "--batch", str(folder)])  # a directory
    runs.append(["search", "--batch", str(folder / "missing.jsonl")])
    return runs


def _cli_other_inputs(rng: random.Random) -> list[list[str]]:
    ids = ["no-such-entry", "\udcff", "a\x1b[2J", "'; DROP TABLE revisions; --", "x" * 10_000]
    runs = []
    for entry_id in ids:
        runs.append(["kb", "history", entry_id])
        runs.append(["kb", "archive", entry_id, "--user", rng.choice(["\x01", "\udcff", "ok"])])
        runs.append(["kb", "rollback", entry_id, "--to", rng.choice(["1", str(10**30), "-1", "x"])])
    runs.append(["kb", "rollback", "sodai-gomi", "--to", str(2**63)])
    runs.append(["kb", "export", "/nonexistent/folder/out.jsonl", "--format", "jsonl"])
    runs.append(["search", "住民票", "--as-of", "2027-02-30"])
    runs.append(["search", "住民票", "--top-k", "9" * 5_000])
    return runs


def run_cli(capsys, args: list[str]) -> tuple[object, str, str]:
    from assistant.operations import cli

    try:
        code: object = cli.main(args)
    except SystemExit as exit_:  # argparse: a usage error
        code = exit_.code
    except Exception as error:  # noqa: BLE001 - the traceback is the failure reported
        code = f"raised {type(error).__name__}: {str(error)[:200]}"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_problem(code: object, out: str, err: str) -> str | None:
    if "Traceback" in err or isinstance(code, str):
        return f"a traceback: {code} {err[-300:]!r}"
    if code == 0:
        return None
    if code == 2:  # argparse names the argument on its last line
        return None if "error: argument" in err else f"exit 2 without the argument: {err!r}"
    if code != 1:
        return f"exit {code!r}"
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    if not lines:
        return f"exit 1 without an 'error:' line: {err[-300:]!r}"
    if len(lines[0]) < 15:
        return f"an unclear message: {lines[0]!r}"
    if out:
        return f"output on failure: {out[:200]!r}"
    return None


@pytest.fixture
def cli_home(starter_home, monkeypatch):
    """The CLI over a starter home, its engine loaded once: ``search`` loads one per run
    otherwise, and the CLI's handling of its input is what is tested here."""
    from assistant.retrieval.engine import Engine

    load, loaded = Engine.load, []

    def load_once(*args, **kwargs):
        if not loaded:
            loaded.append(load(*args, **kwargs))
        return loaded[0]

    monkeypatch.setenv("MADOGUCHI_HOME", str(starter_home.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(starter_home.encoder_path))
    monkeypatch.setattr(Engine, "load", load_once)
    return starter_home


def test_every_cli_input_fails_with_one_clear_line(cli_home, tmp_path, capsys):
    rng = random.Random(SEED)
    before = db_state(cli_home.database_path)
    failures = []
    runs = 0
    started = time.perf_counter()

    def attempt(args: list[str]) -> object:
        nonlocal runs
        runs += 1
        code, out, err = run_cli(capsys, args)
        problem = cli_problem(code, out, err)
        if problem:
            shown = [a[:60] for a in args]
            failures.append(f"madoguchi {' '.join(map(repr, shown))}\n    -> {problem}")
        return code

    for fmt, path in _cli_files(rng, tmp_path / "files"):
        if attempt(["kb", "validate", str(path), "--format", fmt]) != 0:
            # What validation rejects, an import rejects too, changing nothing.
            publish = ["--publish"] if rng.random() < 0.5 else []
            attempt(["kb", "import", str(path), "--format", fmt, *publish])
    for args in _cli_searches(rng, tmp_path):
        attempt(args)
    for args in _cli_other_inputs(rng):
        attempt(args)
    elapsed = time.perf_counter() - started
    print(f"cli fuzz: {runs} runs in {elapsed:.1f} s, {len(failures)} failures")
    assert not failures, f"{len(failures)} of {runs} runs failed:\n" + "\n".join(failures[:40])
    assert integrity_problems(cli_home.database_path) == []
    assert db_state(cli_home.database_path) == before


# ---------------------------------------------------------------------------------------
# Regressions: each bug the fuzz found, on its own
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(template_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("regressions") / "home"
    shutil.copytree(template_home, home)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(home, MADOGUCHI_RASA_PORT=str(port))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def admin_json(api) -> dict[str, str]:
    return {**bearer(api.app.state.settings, ADMIN, "admin"), **JSON}


def test_a_body_over_the_limit_is_a_413_read_or_not(api):
    from api.limits import MAX_BODY_BYTES

    declared = api.post("/api/chat", content=b"x" * (MAX_BODY_BYTES + 1), headers=JSON)
    assert declared.status_code == 413
    assert "大きすぎます" in declared.json()["detail"]
    streamed = api.post("/api/chat", content=iter([b"x" * 500_000] * 3), headers=JSON)
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert api.request("GET", "/api/health", content=b"x" * (5 * MiB)).status_code == 413


def test_json_nested_too_deeply_is_a_400_saying_so(api):
    response = api.post("/api/chat", content=nested(DEEP), headers=JSON)
    assert response.status_code == 400
    assert "入れ子が深すぎます" in response.json()["detail"]


def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte(api):
    response = api.post("/api/chat", content=b'{"message": "\xff"}', headers=JSON)
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"] and "14 バイト目" in response.json()["detail"]


@pytest.mark.parametrize(
    "path, body, loc",
    [
        ("/api/chat", b'{"message": "\\ud800"}', ["body", "message"]),
        ("/api/chat", b'\xef\xbb\xbf{"message": "ok\\udc00"}', ["body", "message"]),
        (
            "/api/entries",
            b'{"id": "x", "title": "t", "questions": ["q", "\\udfff"], "answer": "a"}',
            ["body", "questions", 1],
        ),
        ("/api/tickets/1/reply", b'{"text": "\\ud83d"}', ["body", "text"]),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field_not_a_500(api, admin_json, path, body, loc):
    """Such a string passed validation, then SQLite or the UTF-8 encoder refused it."""
    response = api.post(path, content=body, headers=admin_json)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize(
    "body",
    [b'{"message": NaN}', b'{"message": Infinity}', b'{"message": ' + nested(900) + b"}"],
    ids=["nan", "infinity", "900-deep"],
)
def test_a_422_does_not_echo_the_input(api, body):
    """Echoing NaN (not JSON) or a 900-level list (too deep to encode) made it a 500."""
    response = api.post("/api/chat", content=body, headers=JSON)
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"] == ["body", "message"] and "input" not in problem


def test_a_number_too_long_to_read_is_a_400(api):
    response = api.post("/api/chat", content=b'{"message": ' + b"1" * 5_000 + b"}", headers=JSON)
    assert response.status_code == 400
    assert "4300 digits" in response.json()["detail"]


@pytest.mark.parametrize(
    "method, url, body, loc",
    [
        ("GET", f"/api/tickets/{2**63}", None, ["path", "ticket_id"]),
        ("POST", f"/api/tickets/{10**30}/claim", None, ["path", "ticket_id"]),
        ("POST", f"/api/tickets/{-(2**63) - 1}/resolve", b"{}", ["path", "ticket_id"]),
        (
            "GET",
            f"/api/chat/messages?after={10**30}",
            None,
            ["query", "after"],
        ),
        ("POST", f"/api/entries/sodai-gomi/revisions/{2**63}/submit", None, ["path", "revision"]),
        ("POST", f"/api/entries/sodai-gomi/revisions/{2**63}/approve", None, ["path", "revision"]),
        (
            "POST",
            "/api/entries/sodai-gomi/rollback",
            b'{"to_revision": 9223372036854775808}',
            ["body", "to_revision"],
        ),
    ],
)
def test_numbers_beyond_sqlite_integers_are_a_422_not_an_overflow(
    api, admin_json, method, url, body, loc
):
    response = api.request(method, url, content=body, headers=admin_json)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize("token", [b"Bearer \xe9\xff", "Bearer トークン".encode()])
def test_a_non_ascii_token_is_a_401_not_a_500(api, token):
    """hmac.compare_digest raised TypeError on non-ASCII text."""
    response = api.get("/api/tickets", headers=[(b"authorization", token)])
    assert response.status_code == 401
    assert response.json()["detail"] == "the bearer token is unknown, expired or revoked"


@pytest.mark.parametrize("field, value", [("title", "t\x00"), ("questions", ["q\x1b[2J"])])
def test_entry_text_with_control_characters_is_a_422_naming_the_field(
    api, admin_json, field, value
):
    body = {"id": "fuzz-control", "title": "t", "questions": ["q"], "answer": "a", field: value}
    response = api.post("/api/entries", json=body, headers=admin_json)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == field


SURROGATE_ENTRY = json.dumps({**GOOD_ENTRY, "title": "\ud800"})  # escaped: "\\ud800"


@pytest.mark.parametrize(
    "args, files, code, message",
    [
        (["kb", "import", "{f}", "--format", "jsonl"], nested(DEEP), 1, "(nested too deeply)"),
        (
            ["kb", "validate", "{f}", "--format", "jsonl"],
            b'{"id": ' + b"1" * 5_000 + b"}",
            1,
            "Exceeds the limit (4300 digits)",
        ),
        (
            ["kb", "import", "{f}", "--format", "jsonl"],
            SURROGATE_ENTRY,
            1,
            "field 'title': is not valid Unicode",
        ),
        (
            ["kb", "import", "{f}", "--format", "csv"],
            f"{CSV_HEADER}\r\na,t\x00,q,a\r\n",
            1,
            "field 'title': must not contain control characters",
        ),
        (
            ["kb", "validate", "{f}", "--format", "csv"],
            f'{CSV_HEADER}\r\na,t,q,"{"x" * 200_000}"\r\n',
            1,
            "not valid CSV (field larger than field limit",
        ),
        (["kb", "validate", "{f}", "--format", "yaml"], "[" * 1_000, 1, "(nested too deeply)"),
        (
            ["kb", "validate", "{f}", "--format", "yaml"],
            "- id: a\n  valid_from: 2027-02-30\n",
            1,
            "field 'valid_from': '2027-02-30' is not a date",
        ),
        (
            ["kb", "validate", "{f}", "--format", "yaml"],
            "- id: !!int abc\n",
            1,
            "not valid YAML (invalid literal for int()",
        ),
        (
            ["kb", "validate", "{f}", "--format", "yaml"],
            "- id: a\n  1: x\n  zz: y\n",
            1,
            "field '1': is not a known field",
        ),
        (
            ["search", "--batch", "{f}"],
            nested(DEEP),
            1,
            "q.txt:1: not valid JSON (nested too deeply)",
        ),
        (
            ["search", "--batch", "{f}"],
            b'{"id": 1, "text": "\\ud800"}',
            1,
            '"text" is not valid Unicode text',
        ),
        (
            ["search", "--batch", "{f}"],
            b'{"id": 1, "text": "' + b"9" * 5_000 + b'"}\n{"id": ' + b"9" * 5_000 + b"}",
            1,
            "q.txt:2: not valid JSON (Exceeds the limit",
        ),
        (["search", "あ" * 10_000], None, 1, "TEXT is 10000 characters; limit 2000"),
        (["search", "\udcff住民票"], None, 1, "TEXT is not valid UTF-8 text"),
        (["search", "住民票\x1b[2J"], None, 1, "TEXT must not contain control characters"),
        (["kb", "history", "\udcff"], None, 1, "ENTRY_ID is not valid UTF-8 text"),
        (
            ["kb", "archive", "sodai-gomi", "--user", "\x1b[2J"],
            None,
            1,
            "--user must not contain control characters",
        ),
        (["kb", "rollback", "sodai-gomi", "--to", str(2**63)], None, 2, "is not a revision number"),
        (
            ["kb", "export", "/nonexistent/folder/x.jsonl", "--format", "jsonl"],
            None,
            1,
            "No such file or directory",
        ),
    ],
    ids=[
        "jsonl-deep",
        "jsonl-huge-number",
        "jsonl-lone-surrogate",
        "csv-control-character",
        "csv-oversized-cell",
        "yaml-deep",
        "yaml-impossible-date",
        "yaml-bad-int-tag",
        "yaml-non-text-keys",
        "batch-deep",
        "batch-lone-surrogate",
        "batch-huge-number",
        "search-too-long",
        "search-undecodable",
        "search-control-characters",
        "history-undecodable-id",
        "archive-control-characters-in-user",
        "rollback-revision-beyond-sqlite",
        "export-to-a-missing-folder",
    ],
)
def test_cli_input_that_raised_now_fails_clearly(
    cli_home, tmp_path, capsys, args, files, code, message
):
    before = db_state(cli_home.database_path)
    if files is not None:
        path = tmp_path / "q.txt"
        path.write_bytes(files if isinstance(files, bytes) else files.encode("utf-8"))
        args = [str(path) if a == "{f}" else a for a in args]
    result, out, err = run_cli(capsys, args)
    assert (result, out) == (code, ""), err
    assert message in err and "Traceback" not in err
    assert db_state(cli_home.database_path) == before
