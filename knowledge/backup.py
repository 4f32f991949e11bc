"""Online backup and restore of the knowledge database.

A backup is one self-contained SQLite file (no ``-wal`` beside it), copied with SQLite's
backup API from a single read snapshot, so it can be taken while the API and the action
server keep writing. It holds everything in the database: entries and their revisions,
the audit log, tickets, staff messages and feedback. The search index is not in it (it
is rebuilt from the database), nor is Rasa's conversation tracker store.

A restore checks the file first and changes nothing if it is not a sound Madoguchi
database. It then saves the live database to ``<home>/backups/`` (so the restore can be
undone), copies the backup in with the same API (other processes may keep the database
open) and moves the knowledge revision past both the old and the restored one, so every
running engine notices on its next question and re-reads what it answers from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from knowledge.model import KnowledgeError
from knowledge.store import (
    SCHEMA_VERSION,
    knowledge_revision,
    migrate,
    open_db,
    record_audit,
    write_transaction,
)

BACKUP_DIR = "backups"  # under MADOGUCHI_HOME: the automatic pre-restore backups
STEP_PAGES = 1024  # pages copied per step (4 MiB at the default page size)
SQLITE_HEADER = b"SQLite format 3\x00"

# Called as (pages copied, total pages) while a database is copied.
Progress = Callable[[int, int], None]


class BackupError(KnowledgeError):
    """A backup or restore could not be done; the message says why and nothing changed."""


class BackupInvalid(BackupError, ValueError):
    """A file cannot be restored: missing, not SQLite, damaged, or not Madoguchi's."""


@dataclass(frozen=True)
class RestoreResult:
    source: Path
    backup_revision: int  # the knowledge revision inside the backup
    previous_revision: int  # the live database's, just before the restore
    knowledge_revision: int  # now: past both, so running engines re-sync
    safety_backup: Path | None  # the live database as it was; None if there was none


def backup_name(revision: int, marker: str = "") -> str:
    """``madoguchi-r000042-20250101T020000Z.db`` (UTC), with ``-marker`` before ``.db``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"madoguchi-r{revision:06d}-{stamp}{'-' + marker if marker else ''}.db"


def _revision_in(conn: sqlite3.Connection) -> int:
    """The knowledge revision stored in a database (0 if it has none)."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kb_meta'"
    ).fetchone():
        return 0
    row = conn.execute("SELECT value FROM kb_meta WHERE key = 'knowledge_revision'").fetchone()
    return int(row[0]) if row else 0


def backup_revision(path: Path | str) -> int:
    """The knowledge revision inside a backup file."""
    if not Path(path).is_file():
        raise BackupInvalid(f"there is no backup file {path}")
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        return _revision_in(conn)


def _steps(progress: Progress | None) -> Callable[[int, int, int], None] | None:
    if progress is None:
        return None
    return lambda _status, remaining, total: progress(total - remaining, total)


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(path), timeout=30.0)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        yield conn
    finally:
        conn.close()


def _integrity_problems(conn: sqlite3.Connection) -> list[str]:
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows


def _snapshot(db_path: Path, target: Path, progress: Progress | None) -> int:
    """Copy ``db_path`` into the new file ``target`` as one self-contained database
    that passes the integrity check; return the knowledge revision inside the copy."""
    with _connect(db_path) as source, _connect(target) as copy:
        # One read transaction across every step: writers go on, the copy is this
        # snapshot. Without it each commit elsewhere would restart the copy.
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        source.backup(copy, pages=STEP_PAGES, progress=_steps(progress))
        source.rollback()
        copy.execute("PRAGMA journal_mode = DELETE")
        problems = _integrity_problems(copy)
        if problems:
            raise BackupError(f"the copy of {db_path} failed the integrity check: {problems[0]}")
        revision = _revision_in(copy)
    with open(target, "rb") as written:
        os.fsync(written.fileno())
    return revision


def _unlink(path: Path) -> None:
    for leftover in (path, *(Path(f"{path}{s}") for s in ("-journal", "-wal", "-shm"))):
        leftover.unlink(missing_ok=True)


def _free_name(folder: Path, revision: int, marker: str) -> Path:
    name = backup_name(revision, marker)
    path, number = folder / name, 1
    while path.exists():  # two backups in the same second
        number += 1
        path = folder / name.replace(".db", f"-{number}.db")
    return path


def backup(
    db_path: Path | str,
    destination: Path | str,
    progress: Progress | None = None,
    *,
    marker: str = "",
) -> Path:
    """Write a consistent copy of the live database; return the file written.

    ``destination`` is a directory (existing, or a path ending in ``/``), where the file
    is named by ``backup_name`` after the knowledge revision inside the copy, or a new
    file's path. An existing file is never overwritten. The copy is written under a
    temporary name in the same directory and renamed when it is complete and checked.
    """
    db_path, target = Path(db_path), Path(destination)
    if not db_path.is_file():
        raise BackupError(f"there is no database at {db_path} to back up")
    into_folder = target.is_dir() or str(destination).endswith(("/", os.sep))
    folder = target if into_folder else target.parent
    if not into_folder and target.exists():
        raise BackupError(f"{target} already exists; give a new file name or a directory")
    try:
        if into_folder:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise BackupError(f"cannot write {target}: directory {folder} does not exist")
        handle, name = tempfile.mkstemp(prefix=".madoguchi-", suffix=".db.tmp", dir=folder)
        os.close(handle)
    except OSError as error:
        raise BackupError(f"cannot write a backup in {folder}: {error.strerror}") from None
    temporary = Path(name)
    try:
        revision = _snapshot(db_path, temporary, progress)
        final = _free_name(folder, revision, marker) if into_folder else target
        if final.exists():
            raise BackupError(f"{final} already exists; give a new file name or a directory")
        os.replace(temporary, final)
    except (OSError, sqlite3.Error) as error:
        raise BackupError(f"backup of {db_path} into {folder} failed: {error}") from None
    finally:
        _unlink(temporary)
    return final


def _stage(source: Path, db_path: Path) -> Path:
    """A private copy of the file to restore, next to the live database."""
    folder = db_path.parent
    if not source.is_file():
        raise BackupInvalid(f"cannot restore {source}: there is no such file")
    if source.resolve() == db_path.resolve():
        raise BackupInvalid(f"cannot restore {source}: it is the live database")
    try:
        with open(source, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise BackupInvalid(f"cannot restore {source}: {error.strerror}") from None
    if header != SQLITE_HEADER:
        raise BackupInvalid(f"cannot restore {source}: it is not an SQLite database")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".restore-", suffix=".db.tmp", dir=folder)
        os.close(handle)
        shutil.copyfile(source, name)
    except OSError as error:
        raise BackupError(f"cannot copy {source} into {folder}: {error}") from None
    return Path(name)


def _prepare(staged: Path, source: Path) -> int:
    """Check the staged copy of ``source`` and bring its schema up to date; return the
    knowledge revision inside it. Raises ``BackupInvalid`` naming the problem."""
    with _connect(staged) as conn:
        try:
            conn.execute("PRAGMA journal_mode = DELETE")
            problems = _integrity_problems(conn)
        except sqlite3.DatabaseError as error:
            raise BackupInvalid(f"cannot restore {source}: it is damaged ({error})") from None
        if problems:
            raise BackupInvalid(
                f"cannot restore {source}: it is damaged (integrity check: {problems[0]})"
            )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        required = ("kb_meta", "entries") if version == 1 else ("kb_meta", "revisions", "audit")
        missing = [name for name in required if name not in tables]
        if missing:
            raise BackupInvalid(
                f"cannot restore {source}: it is not a Madoguchi database "
                f"(no {', '.join(missing)} table)"
            )
        if version > SCHEMA_VERSION:
            raise BackupInvalid(
                f"cannot restore {source}: its schema version {version} is newer than this "
                f"program's {SCHEMA_VERSION}; upgrade Madoguchi first"
            )
        try:
            migrate(sqlite_utils.Database(conn))
        except sqlite3.Error as error:
            raise BackupInvalid(
                f"cannot restore {source}: its schema version {version} could not be "
                f"upgraded ({error})"
            ) from None
        return _revision_in(conn)


def _copy_into(staged: Path, db_path: Path, progress: Progress | None) -> int:
    """Copy the staged database over the live one in one write transaction of the
    live database; return the live knowledge revision just before."""
    with _connect(staged) as source, _connect(db_path) as live:
        page_size = live.execute("PRAGMA page_size").fetchone()[0]
        if source.execute("PRAGMA page_size").fetchone()[0] != page_size:
            # A WAL database only takes pages of its own size.
            source.execute(f"PRAGMA page_size = {int(page_size)}")
            source.execute("VACUUM")
        previous = _revision_in(live)
        source.backup(live, pages=STEP_PAGES, progress=_steps(progress))
    return previous


def restore(
    backup_path: Path | str,
    db_path: Path | str,
    *,
    progress: Progress | None = None,
    actor: str = "system",
) -> RestoreResult:
    """Replace the live database's content with a backup's.

    The live database is untouched unless the file passes every check and the live
    database was saved to ``<home>/backups/`` first. Afterwards its knowledge revision is
    one past both the previous live one and the backup's, and the audit log says what
    was restored from where.
    """
    source, db_path = Path(backup_path), Path(db_path)
    staged = _stage(source, db_path)
    try:
        backup_rev = _prepare(staged, source)
        safety = None
        if db_path.is_file():
            try:
                folder = f"{db_path.parent / BACKUP_DIR}{os.sep}"  # created if missing
                safety = backup(db_path, folder, marker="pre-restore")
            except BackupError as error:
                raise BackupError(
                    f"nothing was restored: the live database could not be saved first "
                    f"({error}); if it is damaged, stop Madoguchi, move {db_path} and its "
                    f"-wal and -shm files aside, and restore again"
                ) from None
        try:
            previous = _copy_into(staged, db_path, progress)
        except (OSError, sqlite3.Error) as error:
            raise BackupError(f"restoring {source} into {db_path} failed: {error}") from None
    finally:
        _unlink(staged)
    db = open_db(db_path)
    try:
        with write_transaction(db):
            revision = max(previous, knowledge_revision(db)) + 1
            db["kb_meta"].upsert({"key": "knowledge_revision", "value": str(revision)}, pk="key")
            record_audit(
                db,
                actor=actor,
                action="restore",
                entry_id=None,
                revision=None,
                detail={
                    "file": str(source.resolve()),
                    "backup_revision": backup_rev,
                    "previous_revision": previous,
                    "knowledge_revision": revision,
                    "pre_restore_backup": str(safety) if safety else None,
                },
            )
    finally:
        db.close()
    return RestoreResult(source, backup_rev, previous, revision, safety)
