"""SQLite storage for entries, their revisions, the audit log, handoff tickets, staff
messages to residents, residents' feedback and suggested phrasings (sqlite-utils).

One file under ``MADOGUCHI_HOME``; WAL mode and a busy timeout so the API's thread pool,
the action server and the CLI can use it at once. Every write runs in one
``BEGIN IMMEDIATE`` transaction: a failed import or publish leaves the database exactly
as it was.

Revisions are immutable in content: editing an entry adds a revision, and only a
revision's status moves (draft -> in_review -> published -> archived). The audit log is
append-only (triggers refuse updates and deletes). ``knowledge_revision`` counts changes
to what can be answered; engines compare it to decide when to refresh their index.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from knowledge.clock import city_today
from knowledge.inquiries import before_handoff, failed_question
from knowledge.model import Entry, EntryNotFound, KnowledgeError, revision_in_force

SCHEMA_VERSION = 7
_LIST_FIELDS = ("questions", "documents", "tags")


class SchemaTooNew(KnowledgeError):
    """The database was written by a newer Madoguchi: this one must not touch it."""

    code = "schema.too_new"

    def __init__(self, version: int):
        self.version = version
        super().__init__(
            f"database schema version {version} is newer than this program's "
            f"{SCHEMA_VERSION}; upgrade Madoguchi (or restore a backup made by this version)",
            version=version,
            supported=SCHEMA_VERSION,
        )


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (and if needed create or migrate) the knowledge database at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _create_revisions(db: sqlite_utils.Database) -> None:
    db["revisions"].create(
        {
            "entry_id": str,
            "revision": int,
            "title": str,
            "category": str,
            "department": str,
            "contact": str,
            "questions": str,  # JSON list
            "answer": str,
            "documents": str,  # JSON list
            "fees": str,
            "tags": str,  # JSON list
            "staff_notes": str,
            "source_url": str,
            "valid_from": str,
            "valid_until": str,
            "status": str,
            "author": str,
            "created_at": str,
            "reviewer": str,
            "published_at": str,
        },
        pk=("entry_id", "revision"),
        not_null={"title", "questions", "answer", "status"},
    )
    db["revisions"].create_index(["status"])


def _create_audit(db: sqlite_utils.Database) -> None:
    db["audit"].create(
        {
            "id": int,
            "at": str,
            "actor": str,
            "action": str,
            "entry_id": str,
            "revision": int,
            "detail": str,  # JSON: the diff, the reason, ...
        },
        pk="id",
        not_null={"at", "actor", "action"},
    )
    db["audit"].create_index(["entry_id", "id"])
    for operation in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_no_{operation.lower()} BEFORE {operation} ON audit "
            f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )


def _add_conversation_tables(db: sqlite_utils.Database) -> None:
    """Version 3: who handles a ticket, what staff send the resident, residents' feedback."""
    for column in ("page", "claimed_by", "claimed_at", "resolved_by", "resolved_at", "note"):
        db["tickets"].add_column(column, str)
    # Messages from a person to the resident's chat, which the chat page polls for.
    db["chat_messages"].create(
        {
            "id": int,
            "session_id": str,
            "ticket_id": int,
            "role": str,
            "author": str,
            "text": str,
            "at": str,
        },
        pk="id",
        not_null={"session_id", "role", "text", "at"},
    )
    db["chat_messages"].create_index(["session_id", "id"])
    db["feedback"].create(
        {
            "id": int,
            "session_id": str,
            "entry_id": str,
            "revision": int,
            "helpful": int,
            "text": str,
            "at": str,
        },
        pk="id",
        not_null={"session_id", "helpful", "at"},
    )
    db["feedback"].create_index(["entry_id"])


def _add_account_tables(db: sqlite_utils.Database) -> None:
    """Version 4: staff, editor and admin accounts, their sessions and tokens, and failed
    logins (for rate limiting). Only hashes of passwords and tokens are stored."""
    db["users"].create(
        {
            "name": str,
            "role": str,
            "display_name": str,
            "password_hash": str,
            "created_at": str,
            "password_changed_at": str,
            "disabled_at": str,
        },
        pk="name",
        not_null={"role", "password_hash", "created_at"},
    )
    db["auth_sessions"].create(
        {
            "token_hash": str,  # SHA-256 of the cookie or bearer token
            "user": str,
            "kind": str,  # "cookie" or "token"
            "csrf_token": str,
            "created_at": str,
            "expires_at": str,
        },
        pk="token_hash",
        not_null={"user", "kind", "created_at", "expires_at"},
        foreign_keys=[("user", "users", "name")],
    )
    db["auth_sessions"].create_index(["user"])
    db["login_failures"].create(
        {"id": int, "name": str, "client": str, "at": str},
        pk="id",
        not_null={"at"},
    )
    db["login_failures"].create_index(["name", "at"])
    db["login_failures"].create_index(["client", "at"])


def _add_session_activity(db: sqlite_utils.Database) -> None:
    """When each session was last used (the idle timeout) and from where (for the list
    a user sees of their own sessions)."""
    db["auth_sessions"].add_column("last_seen_at", str)
    db["auth_sessions"].add_column("client", str)


def _add_ticket_question(db: sqlite_utils.Database) -> None:
    """Version 6: the question that failed, chosen once when the ticket is opened (and
    here, for older tickets, from the transcript as it was at the handoff)."""
    db["tickets"].add_column("question", str)
    for ticket_id, transcript in db.execute("SELECT id, transcript FROM tickets").fetchall():
        question = failed_question(before_handoff(json.loads(transcript or "[]")))
        db.execute("UPDATE tickets SET question = ? WHERE id = ?", [question, ticket_id])


def _add_suggestions(db: sqlite_utils.Database) -> None:
    """Version 7: residents' and staff's wordings suggested as phrasings of the entry that
    answered them (knowledge.suggestions), and which entry answered a resolved ticket."""
    db["tickets"].add_column("answered_entry", str)
    db["suggestions"].create(
        {
            "id": int,
            "entry_id": str,
            "text": str,  # masked (knowledge.privacy)
            "key": str,  # knowledge.model.question_key of the text
            "source": str,  # "staff" | "resident"
            "weight": int,  # +1 for, -1 against
            "ticket_id": int,
            "session_id": str,
            "actor": str,
            "status": str,  # "open" | "accepted" | "rejected"
            "created_at": str,
            "decided_by": str,
            "decided_at": str,
            "revision": int,  # the draft revision it was accepted into
            "reason": str,
        },
        pk="id",
        not_null={"entry_id", "text", "key", "source", "weight", "status", "created_at"},
    )
    db["suggestions"].create_index(["status", "entry_id"])
    db["suggestions"].create_index(["entry_id", "key"])


def migrate(db: sqlite_utils.Database) -> None:
    """Create the schema, or bring an older one up to ``SCHEMA_VERSION``."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(version)
    if version == SCHEMA_VERSION:
        return
    with write_transaction(db):
        if version < 1:
            db["kb_meta"].create({"key": str, "value": str}, pk="key")
            db["tickets"].create(
                {
                    "id": int,
                    "session_id": str,
                    "status": str,
                    "reason": str,
                    "channel": str,
                    "transcript": str,  # JSON list of turns
                    "candidates": str,  # JSON list of the engine's candidates
                    "created_at": str,
                    "updated_at": str,
                },
                pk="id",
                not_null={"session_id", "status", "reason"},
            )
            db["tickets"].create_index(["session_id", "status"])
        if version < 2:
            _create_revisions(db)
            _create_audit(db)
            if version == 1:
                # Version 1 kept one row per entry; each becomes that entry's revision.
                db.execute(
                    "INSERT INTO revisions SELECT id, revision, title, category, department, "
                    "contact, questions, answer, documents, fees, tags, staff_notes, "
                    "source_url, valid_from, valid_until, status, 'migration', updated_at, "
                    "'', CASE status WHEN 'published' THEN updated_at ELSE '' END "
                    "FROM entries"
                )
                db["entries"].drop()
        if version < 3:
            _add_conversation_tables(db)
        if version < 4:
            _add_account_tables(db)
        if version < 5:
            _add_session_activity(db)
        if version < 6:
            _add_ticket_question(db)
        if version < 7:
            _add_suggestions(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One IMMEDIATE transaction: taking the write lock up front avoids the deadlock of
    two readers both upgrading to writers. sqlite-utils' own writes nest inside it."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def knowledge_revision(db: sqlite_utils.Database) -> int:
    row = db.execute("SELECT value FROM kb_meta WHERE key = 'knowledge_revision'").fetchone()
    return int(row[0]) if row else 0


def bump_knowledge_revision(db: sqlite_utils.Database) -> int:
    """Increase the knowledge revision; call inside the write transaction that changed it."""
    revision = knowledge_revision(db) + 1
    db["kb_meta"].upsert({"key": "knowledge_revision", "value": str(revision)}, pk="key")
    return revision


def _row(entry: Entry) -> dict[str, Any]:
    row = entry.content()
    row["entry_id"] = row.pop("id")
    for name in _LIST_FIELDS:
        row[name] = json.dumps(row[name], ensure_ascii=False)
    row.update(
        revision=entry.revision,
        status=entry.status,
        author=entry.author,
        created_at=entry.created_at or now_iso(),
        reviewer=entry.reviewer,
        published_at=entry.published_at,
    )
    return row


def _entry(row: dict[str, Any]) -> Entry:
    def date(value: str | None) -> dt.date | None:
        return dt.date.fromisoformat(value) if value else None

    return Entry(
        id=row["entry_id"],
        title=row["title"],
        category=row["category"] or "",
        department=row["department"] or "",
        contact=row["contact"] or "",
        questions=tuple(json.loads(row["questions"])),
        answer=row["answer"],
        documents=tuple(json.loads(row["documents"] or "[]")),
        fees=row["fees"] or "",
        tags=tuple(json.loads(row["tags"] or "[]")),
        staff_notes=row["staff_notes"] or "",
        source_url=row["source_url"] or "",
        valid_from=date(row["valid_from"]),
        valid_until=date(row["valid_until"]),
        status=row["status"],
        revision=row["revision"],
        author=row["author"] or "",
        created_at=row["created_at"] or "",
        reviewer=row["reviewer"] or "",
        published_at=row["published_at"] or "",
    )


def insert_revision(db: sqlite_utils.Database, entry: Entry) -> None:
    """Store a new revision; call inside a write transaction."""
    db["revisions"].insert(_row(entry))


def set_status(
    db: sqlite_utils.Database, entry_id: str, revision: int, status: str, **fields: str
) -> None:
    db["revisions"].update((entry_id, revision), {"status": status, **fields})


def revisions_of(db: sqlite_utils.Database, entry_id: str) -> list[Entry]:
    """Every revision of one entry, oldest first."""
    rows = db.query("SELECT * FROM revisions WHERE entry_id = ? ORDER BY revision", [entry_id])
    return [_entry(row) for row in rows]


def get_revision(db: sqlite_utils.Database, entry_id: str, revision: int) -> Entry:
    rows = list(
        db.query(
            "SELECT * FROM revisions WHERE entry_id = ? AND revision = ?", [entry_id, revision]
        )
    )
    if not rows:
        raise EntryNotFound(entry_id, revision)
    return _entry(rows[0])


def latest_revision(db: sqlite_utils.Database, entry_id: str) -> Entry | None:
    rows = list(
        db.query(
            "SELECT * FROM revisions WHERE entry_id = ? ORDER BY revision DESC LIMIT 1", [entry_id]
        )
    )
    return _entry(rows[0]) if rows else None


def get_entry(db: sqlite_utils.Database, entry_id: str, as_of: dt.date | None = None) -> Entry:
    """The revision answered on ``as_of``, else the latest revision. ``as_of`` defaults
    to today in the default city time zone (knowledge.clock); a caller that holds a city
    profile passes its ``today()``."""
    revisions = revisions_of(db, entry_id)
    if not revisions:
        raise EntryNotFound(entry_id)
    return revision_in_force(revisions, as_of or city_today()) or revisions[-1]


def all_revisions(db: sqlite_utils.Database) -> dict[str, list[Entry]]:
    """Every revision of every entry, grouped by entry id (ids sorted, revisions ascending)."""
    grouped: dict[str, list[Entry]] = {}
    for row in db.query("SELECT * FROM revisions ORDER BY entry_id, revision"):
        entry = _entry(row)
        grouped.setdefault(entry.id, []).append(entry)
    return grouped


def published_revisions(db: sqlite_utils.Database) -> list[Entry]:
    """Published revisions of every entry: what the engine indexes (today's and scheduled)."""
    rows = db.query(
        "SELECT * FROM revisions WHERE status = 'published' ORDER BY entry_id, revision"
    )
    return [_entry(row) for row in rows]


def current_entries(db: sqlite_utils.Database, as_of: dt.date | None = None) -> list[Entry]:
    """One revision per entry: the one in force on ``as_of``, else the latest (for export).
    ``as_of`` defaults as in ``get_entry``."""
    return current_of(all_revisions(db), as_of)


def current_of(revisions: dict[str, list[Entry]], as_of: dt.date | None = None) -> list[Entry]:
    """``current_entries`` of revisions already read (``all_revisions``)."""
    day = as_of or city_today()
    return [revision_in_force(revs, day) or revs[-1] for revs in revisions.values()]


def record_audit(
    db: sqlite_utils.Database,
    *,
    actor: str,
    action: str,
    entry_id: str | None,
    revision: int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append to the audit log; call inside the write transaction that made the change."""
    db["audit"].insert(
        {
            "at": now_iso(),
            "actor": actor,
            "action": action,
            "entry_id": entry_id,
            "revision": revision,
            "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        }
    )


def audit_log(db: sqlite_utils.Database, entry_id: str | None = None) -> list[dict[str, Any]]:
    if entry_id is None:
        rows = db.query("SELECT * FROM audit ORDER BY id")
    else:
        rows = db.query("SELECT * FROM audit WHERE entry_id = ? ORDER BY id", [entry_id])
    return _audit_events(rows)


def recent_audit(db: sqlite_utils.Database, limit: int) -> list[dict[str, Any]]:
    return _audit_events(db.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", [limit]))


def _audit_events(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "detail": json.loads(row["detail"] or "{}")} for row in rows]
