"""SQLite storage for entries, through sqlite-utils.

One file under ``MADOGUCHI_HOME``; WAL mode and a busy timeout so the API's thread pool,
the action server and the CLI can use it at once. Every write runs in one
``BEGIN IMMEDIATE`` transaction: a failed import leaves the database exactly as it was.

``knowledge_revision`` counts changes to what can be answered; the index records the
revision it was built from, so a stale index is detected.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from knowledge.model import Entry, EntryNotFound

SCHEMA_VERSION = 1


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (and if needed create) the knowledge database at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> None:
    """Create the schema, or bring an older one up to ``SCHEMA_VERSION``."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {version} is newer than this program's "
            f"{SCHEMA_VERSION}; upgrade Madoguchi"
        )
    if version == SCHEMA_VERSION:
        return
    with write_transaction(db):
        if version < 1:
            db["entries"].create(
                {
                    "id": str,
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
                    "revision": int,
                    "updated_at": str,
                },
                pk="id",
                not_null={"title", "questions", "answer", "status", "revision"},
                if_not_exists=True,
            )
            db["kb_meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
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
                if_not_exists=True,
            )
            db["tickets"].create_index(["session_id", "status"], if_not_exists=True)
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


def _row(entry: Entry) -> dict:
    content = entry.content()
    for name in ("questions", "documents", "tags"):
        content[name] = json.dumps(content[name], ensure_ascii=False)
    content["status"] = entry.status
    content["revision"] = entry.revision
    content["updated_at"] = entry.updated_at or now_iso()
    return content


def _entry(row: dict) -> Entry:
    return Entry(
        id=row["id"],
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
        valid_from=dt.date.fromisoformat(row["valid_from"]) if row["valid_from"] else None,
        valid_until=dt.date.fromisoformat(row["valid_until"]) if row["valid_until"] else None,
        status=row["status"],
        revision=row["revision"],
        updated_at=row["updated_at"] or "",
    )


def save_entry(db: sqlite_utils.Database, entry: Entry) -> None:
    """Insert or replace one entry row; call inside a write transaction."""
    db["entries"].upsert(_row(entry), pk="id")


def get_entry(db: sqlite_utils.Database, entry_id: str) -> Entry:
    rows = list(db.query("SELECT * FROM entries WHERE id = ?", [entry_id]))
    if not rows:
        raise EntryNotFound(entry_id)
    return _entry(rows[0])


def find_entry(db: sqlite_utils.Database, entry_id: str) -> Entry | None:
    try:
        return get_entry(db, entry_id)
    except EntryNotFound:
        return None


def all_entries(db: sqlite_utils.Database) -> list[Entry]:
    """Every entry, whatever its status, ordered by id."""
    return [_entry(row) for row in db.query("SELECT * FROM entries ORDER BY id")]


def entries_in_force(db: sqlite_utils.Database, as_of: dt.date) -> list[Entry]:
    """Published entries answerable on ``as_of``, ordered by id."""
    return [entry for entry in all_entries(db) if entry.in_force(as_of)]
