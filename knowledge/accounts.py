"""Accounts for staff, editors and administrators: passwords, sessions, tokens, lockout.

- Passwords are hashed with scrypt (memory-hard: 2^15 × 8 × 128 bytes = 32 MiB per hash),
  a random salt per password; stored as ``scrypt$n$r$p$salt$hash`` so the cost can be
  raised later without invalidating old hashes.
- A login makes a random token (256 bits) that is given to the browser (cookie) or the
  API client (bearer token); only its SHA-256 is stored, so a copy of the database does
  not let anyone in. Cookie sessions also carry a CSRF token.
- Every login attempt is recorded before its password is checked, in the transaction
  that checks the limits, so parallel attempts cannot all pass the check; a right
  password removes its record. Too many failures for one name from one address, or from
  one address for any names, refuse further attempts for a while (``LoginThrottled``),
  whatever the password. Many failures for one name from everywhere (guessing spread
  over many addresses) hold back every address that has failed for that name, not the
  name itself: the account's owner, at an address that has not failed, still logs in.
- A cookie session ends after ``SESSION_HOURS``, or sooner when it has not been used for
  the idle time the caller gives (``MADOGUCHI_SESSION_IDLE_MINUTES``). Users list and end
  their own sessions and tokens.
- Every change to accounts, and every login and logout, is in the audit log.

Roles are ordered: an editor may do what staff may, an admin what an editor may.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

import sqlite_utils

from knowledge.model import KnowledgeError, text_problem
from knowledge.privacy import mask_personal_data
from knowledge.store import now_iso, record_audit, write_transaction

ROLES = ("staff", "editor", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024

SESSION_HOURS = 10  # a working day; then log in again
TOKEN_MAX_S = 30 * 24 * 3600
FAILURE_WINDOW_S = 15 * 60
# Failed logins in the window that hold back further attempts: for a name from one
# address (a person mistyping, or a guesser), from one address for any names (a guesser
# trying names), and for a name from anywhere (guessing spread over many addresses):
# past that, an address that has failed once for the name waits, so each further
# address gets one guess, while the owner at a clean address is never locked out.
MAX_FAILURES_PER_NAME_AND_CLIENT = 5
MAX_FAILURES_PER_CLIENT = 20
MAX_FAILURES_PER_NAME = 50
# A session last used less than this long ago is not written again (a write per
# request would be the busiest write of the database).
SEEN_RESOLUTION_S = 60


class AccountError(KnowledgeError):
    """A request about accounts that cannot be done (bad name, weak password, ...)."""


class LoginFailed(KnowledgeError):
    """Wrong name or password, or a disabled account (not said which)."""

    code = "login.failed"


class SessionNotFound(KnowledgeError):
    """No such session or token of this user."""

    code = "session.not_found"


class LoginThrottled(KnowledgeError):
    code = "login.throttled"

    def __init__(self, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(
            f"too many failed logins; try again in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )


@dataclass(frozen=True)
class User:
    name: str
    role: str
    display_name: str = ""
    created_at: str = ""
    disabled: bool = False

    def may(self, role: str) -> bool:
        """True if this user's role includes ``role``."""
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class Session:
    token: str  # the secret given to the browser or client; not stored
    user: User
    kind: str
    csrf_token: str
    expires_at: str

    @property
    def ref(self) -> str:
        return session_ref(_token_hash(self.token))


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions or tokens, as they may see it (never the secret)."""

    ref: str
    kind: str
    client: str
    created_at: str
    last_seen_at: str
    expires_at: str


def session_ref(token_hash: str) -> str:
    """A session's public name: the start of its token's hash (which does not reveal the
    token; the token is what lets one in)."""
    return token_hash[:16]


# -- passwords ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode("utf-8", "surrogateescape"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(_unb64(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


# A hash of nothing: checking a password for an unknown name costs the same as for a
# known one, so response times do not tell which names exist.
_DUMMY_HASH = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password must be at most {MAX_PASSWORD} characters"
    # Not even tabs or line breaks: a password is typed on one line.
    if password.strip() != password or any(unicodedata.category(c) == "Cc" for c in password):
        return "the password must not start or end with spaces or contain control characters"
    if text_problem(password):  # lone surrogates
        return "the password must be valid text"
    return None


# -- users ----------------------------------------------------------------------------


def _user(row: dict) -> User:
    return User(
        name=row["name"],
        role=row["role"],
        display_name=row["display_name"] or "",
        created_at=row["created_at"],
        disabled=bool(row["disabled_at"]),
    )


def add_user(
    db: sqlite_utils.Database,
    name: str,
    role: str,
    password: str,
    *,
    display_name: str = "",
    actor: str = "cli:operator",
) -> User:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(
            "the user name must be 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if (problem := password_problem(password)) is not None:
        raise AccountError(problem)
    if len(display_name) > 100 or (display_name and text_problem(display_name)):
        raise AccountError("the display name must be at most 100 characters of plain text")
    password_hash = hash_password(password)  # slow: outside the write lock
    with write_transaction(db):
        if db["users"].count_where("name = ?", [name]):
            raise AccountError(f"a user named {name!r} already exists")
        stamp = now_iso()
        db["users"].insert(
            {
                "name": name,
                "role": role,
                "display_name": display_name,
                "password_hash": password_hash,
                "created_at": stamp,
                "password_changed_at": stamp,
                "disabled_at": None,
            }
        )
        record_audit(
            db,
            actor=actor,
            action="user_add",
            entry_id=None,
            revision=None,
            detail={"user": name, "role": role},
        )
    return get_user(db, name)


def get_user(db: sqlite_utils.Database, name: str) -> User:
    rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
    if not rows:
        raise AccountError(f"no user named {name!r}")
    return _user(rows[0])


def list_users(db: sqlite_utils.Database) -> list[User]:
    return [_user(row) for row in db.query("SELECT * FROM users ORDER BY name")]


def set_password(
    db: sqlite_utils.Database, name: str, password: str, *, actor: str = "cli:operator"
) -> None:
    """A new password; every session and token of the user ends."""
    if (problem := password_problem(password)) is not None:
        raise AccountError(problem)
    password_hash = hash_password(password)
    with write_transaction(db):
        get_user(db, name)
        db["users"].update(name, {"password_hash": password_hash, "password_changed_at": now_iso()})
        db.execute("DELETE FROM auth_sessions WHERE user = ?", [name])
        record_audit(
            db,
            actor=actor,
            action="user_password",
            entry_id=None,
            revision=None,
            detail={"user": name},
        )


def set_role(db: sqlite_utils.Database, name: str, role: str, *, actor: str = "cli:operator"):
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    with write_transaction(db):
        before = get_user(db, name)
        db["users"].update(name, {"role": role})
        record_audit(
            db,
            actor=actor,
            action="user_role",
            entry_id=None,
            revision=None,
            detail={"user": name, "from": before.role, "to": role},
        )


def set_disabled(
    db: sqlite_utils.Database, name: str, disabled: bool, *, actor: str = "cli:operator"
) -> None:
    """Disable (every session and token ends at once) or enable an account."""
    with write_transaction(db):
        get_user(db, name)
        db["users"].update(name, {"disabled_at": now_iso() if disabled else None})
        if disabled:
            db.execute("DELETE FROM auth_sessions WHERE user = ?", [name])
        record_audit(
            db,
            actor=actor,
            action="user_disable" if disabled else "user_enable",
            entry_id=None,
            revision=None,
            detail={"user": name},
        )


# -- logging in -----------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _since(seconds: int) -> str:
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds")


def throttled_for(db: sqlite_utils.Database, name: str, client: str) -> int:
    """Seconds until a login for ``name`` from ``client`` may be tried again (0: now)."""
    since = _since(FAILURE_WINDOW_S)
    waits = []
    limits = [
        ("name = ? AND client = ?", [name, client], MAX_FAILURES_PER_NAME_AND_CLIENT),
        ("client = ?", [client], MAX_FAILURES_PER_CLIENT),
    ]
    # The name's own cap holds back only addresses that have failed for it.
    if db.execute(
        "SELECT 1 FROM login_failures WHERE name = ? AND client = ? AND at > ? LIMIT 1",
        [name, client, since],
    ).fetchone():
        limits.append(("name = ?", [name], MAX_FAILURES_PER_NAME))
    for where, values, limit in limits:
        rows = db.execute(
            f"SELECT at FROM login_failures WHERE {where} AND at > ? ORDER BY at DESC "
            "LIMIT 1 OFFSET ?",
            [*values, since, limit - 1],
        ).fetchall()
        if rows:  # the limit-th most recent failure is inside the window
            oldest = dt.datetime.fromisoformat(rows[0][0])
            free = oldest + dt.timedelta(seconds=FAILURE_WINDOW_S)
            waits.append(int((free - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1)
    return max([0, *waits])


def _record_attempt(db: sqlite_utils.Database, name: str, client: str) -> int:
    """Check the limits and count this attempt as a failure, in one write transaction:
    the next attempt, however close behind, sees it. Returns the record's id."""
    with write_transaction(db):
        wait = throttled_for(db, name, client)
        if wait:
            raise LoginThrottled(wait)
        db.execute("DELETE FROM login_failures WHERE at < ?", [_since(FAILURE_WINDOW_S)])
        cursor = db.execute(
            "INSERT INTO login_failures (name, client, at) VALUES (?, ?, ?)",
            [name, client, now_iso()],
        )
        return cursor.lastrowid


def log_in(
    db: sqlite_utils.Database,
    name: str,
    password: str,
    *,
    client: str,
    kind: str = "cookie",
    lifetime_s: int | None = None,
) -> Session:
    """Check the password and open a session (``kind`` "cookie") or issue a bearer token
    (``kind`` "token", valid ``lifetime_s``). Raises LoginThrottled or LoginFailed."""
    name = name[:64]
    # Failures are kept by the name typed, which may be anything (a phone number typed
    # in the wrong box): kept and counted masked.
    attempt = _record_attempt(db, mask_personal_data(name), client)  # before the scrypt
    rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
    row = rows[0] if rows else None
    good = verify_password(password[:MAX_PASSWORD], row["password_hash"] if row else _dummy_hash())
    if not good or row is None or row["disabled_at"]:
        with write_transaction(db):
            record_audit(
                db,
                actor=name if row else "anonymous",
                action="login_failed",
                entry_id=None,
                revision=None,
                detail={"client": client},
            )
        raise LoginFailed("wrong user name or password")
    seconds = SESSION_HOURS * 3600 if lifetime_s is None else max(60, min(lifetime_s, TOKEN_MAX_S))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32) if kind == "cookie" else ""
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).isoformat(
        timespec="seconds"
    )
    with write_transaction(db):
        db.execute("DELETE FROM login_failures WHERE id = ?", [attempt])  # it was no failure
        db.execute("DELETE FROM auth_sessions WHERE expires_at < ?", [now_iso()])
        stamp = now_iso()
        db["auth_sessions"].insert(
            {
                "token_hash": _token_hash(token),
                "user": name,
                "kind": kind,
                "csrf_token": csrf,
                "created_at": stamp,
                "expires_at": expires,
                "last_seen_at": stamp,
                "client": client[:100],
            }
        )
        record_audit(
            db,
            actor=name,
            action="login" if kind == "cookie" else "token_issued",
            entry_id=None,
            revision=None,
            detail={"client": client, "expires_at": expires},
        )
    return Session(token, _user(row), kind, csrf, expires)


def session_for(
    db: sqlite_utils.Database, token: str, kind: str, *, idle_s: int | None = None
) -> Session | None:
    """The live session or token with this secret, or None (unknown, expired, disabled,
    or, for a cookie session, unused for ``idle_s``). Marks it used."""
    if not token or len(token) > 200:
        return None
    token_hash = _token_hash(token)
    rows = list(
        db.query(
            "SELECT s.*, u.name, u.role, u.display_name, u.created_at AS user_created, "
            "u.disabled_at FROM auth_sessions s JOIN users u ON u.name = s.user "
            "WHERE s.token_hash = ? AND s.kind = ? AND s.expires_at > ?",
            [token_hash, kind, now_iso()],
        )
    )
    if not rows or rows[0]["disabled_at"]:
        return None
    row = rows[0]
    seen = dt.datetime.fromisoformat(row["last_seen_at"] or row["created_at"])
    idle = (dt.datetime.now(dt.timezone.utc) - seen).total_seconds()
    if kind == "cookie" and idle_s is not None and idle > idle_s:
        with write_transaction(db):
            db.execute("DELETE FROM auth_sessions WHERE token_hash = ?", [token_hash])
        return None
    if idle > SEEN_RESOLUTION_S:
        with write_transaction(db):
            db.execute(
                "UPDATE auth_sessions SET last_seen_at = ? WHERE token_hash = ?",
                [now_iso(), token_hash],
            )
    user = User(row["name"], row["role"], row["display_name"] or "", row["user_created"])
    return Session(token, user, kind, row["csrf_token"] or "", row["expires_at"])


def sessions_of(db: sqlite_utils.Database, name: str) -> list[SessionInfo]:
    """The user's live sessions and tokens, newest first."""
    return [
        SessionInfo(
            ref=session_ref(row["token_hash"]),
            kind=row["kind"],
            client=row["client"] or "",
            created_at=row["created_at"],
            last_seen_at=row["last_seen_at"] or row["created_at"],
            expires_at=row["expires_at"],
        )
        for row in db.query(
            "SELECT * FROM auth_sessions WHERE user = ? AND expires_at > ? "
            "ORDER BY created_at DESC, token_hash",
            [name, now_iso()],
        )
    ]


def end_session(db: sqlite_utils.Database, name: str, ref: str) -> None:
    """End one of the user's own sessions or tokens (``ref`` from :func:`sessions_of`)."""
    if not re.fullmatch(r"[0-9a-f]{16}", ref):
        raise AccountError("a session reference is 16 hexadecimal characters")
    with write_transaction(db):
        cursor = db.execute(
            "DELETE FROM auth_sessions WHERE user = ? AND substr(token_hash, 1, 16) = ?",
            [name, ref],
        )
        if not cursor.rowcount:
            raise SessionNotFound(f"no session or token {ref} of yours", ref=ref)
        record_audit(
            db,
            actor=name,
            action="session_ended",
            entry_id=None,
            revision=None,
            detail={"session": ref},
        )


def log_out(db: sqlite_utils.Database, token: str) -> None:
    with write_transaction(db):
        rows = list(
            db.query("SELECT user FROM auth_sessions WHERE token_hash = ?", [_token_hash(token)])
        )
        db.execute("DELETE FROM auth_sessions WHERE token_hash = ?", [_token_hash(token)])
        if rows:
            record_audit(db, actor=rows[0]["user"], action="logout", entry_id=None, revision=None)
