"""Retention: what residents said is kept for a set period (``MADOGUCHI_RETENTION_DAYS``,
default 90), then deleted.

Deleted once older than the period:
- resolved tickets (their transcripts, what the assistant understood, staff notes) by
  the time they were resolved, and the staff and system messages sent in them;
- any other staff message to a resident's chat, by when it was sent;
- residents' feedback; failed logins (the names typed, the addresses);
- suggested phrasings (residents' masked wordings, knowledge.suggestions), by when they
  were suggested, or for a rejected one by when it was rejected: a rejection is
  remembered for the period, not for ever (its key is the wording itself);
- Rasa's conversations (``rasa/trackers.db``): every event older than the period.

Open tickets are kept however old they are: a person still owes the resident an answer.
The audit log is append-only and kept: it records who did what, never what was said
(field names, lengths and hashes instead of text), and each purge adds a row with its
counts. Deleted rows are overwritten on disk (``secure_delete``), not only unlinked.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlite_utils

from knowledge.store import record_audit, write_transaction

# The Rasa SQL tracker store's table (rasa.core.tracker_store.SQLTrackerStore).
_TRACKER_EVENTS = "events"


@dataclass(frozen=True)
class PurgeReport:
    days: int
    before: str  # the cut-off moment (UTC, ISO 8601)
    tickets: int = 0
    chat_messages: int = 0
    feedback: int = 0
    login_failures: int = 0
    suggestions: int = 0
    tracker_events: int = 0

    def summary(self) -> str:
        return (
            f"deleted what is older than {self.days} days (before {self.before}): "
            f"{self.tickets} resolved tickets, {self.chat_messages} staff messages, "
            f"{self.feedback} feedback, {self.login_failures} failed logins, "
            f"{self.suggestions} suggested phrasings, "
            f"{self.tracker_events} Rasa tracker events"
        )


def cutoff(days: int, now: dt.datetime | None = None) -> dt.datetime:
    if days < 1:
        raise ValueError(f"a retention period must be at least 1 day, not {days}")
    return (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days)


def _delete(db: sqlite_utils.Database, sql: str, values: list) -> int:
    return db.execute(sql, values).rowcount


def purge_trackers(path: Path, before: dt.datetime) -> int:
    """Delete Rasa's tracker events older than ``before``; the number deleted. A store
    that does not exist yet (Rasa never ran) holds nothing to delete."""
    if not Path(path).is_file():
        return 0
    trackers = sqlite3.connect(path, timeout=30.0)
    try:
        trackers.execute("PRAGMA busy_timeout = 30000")
        trackers.execute("PRAGMA secure_delete = ON")
        known = trackers.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [_TRACKER_EVENTS]
        ).fetchone()
        if not known:
            return 0
        with trackers:  # one transaction, committed
            deleted = trackers.execute(
                f"DELETE FROM {_TRACKER_EVENTS} WHERE timestamp < ?", [before.timestamp()]
            ).rowcount
        trackers.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        trackers.close()
    return deleted


def purge(
    db: sqlite_utils.Database,
    *,
    days: int,
    trackers_path: Path | None = None,
    actor: str = "system:retention",
    now: dt.datetime | None = None,
) -> PurgeReport:
    """Delete resident data older than ``days`` (one transaction in the knowledge
    database, audited with the counts), then Rasa's old tracker events."""
    moment = cutoff(days, now)
    before = moment.isoformat(timespec="seconds")
    db.execute("PRAGMA secure_delete = ON")
    tracker_events = purge_trackers(trackers_path, moment) if trackers_path else 0
    with write_transaction(db):
        old_tickets = "SELECT id FROM tickets WHERE status = 'resolved' AND resolved_at < ?"
        chat_messages = _delete(
            db,
            f"DELETE FROM chat_messages WHERE at < ? OR ticket_id IN ({old_tickets})",
            [before, before],
        )
        tickets = _delete(db, old_tickets.replace("SELECT id", "DELETE"), [before])
        feedback = _delete(db, "DELETE FROM feedback WHERE at < ?", [before])
        login_failures = _delete(db, "DELETE FROM login_failures WHERE at < ?", [before])
        suggestions = _delete(
            db,
            "DELETE FROM suggestions WHERE (status = 'rejected' AND "
            "COALESCE(decided_at, created_at) < ?) OR (status != 'rejected' AND created_at < ?)",
            [before, before],
        )
        report = PurgeReport(
            days=days,
            before=before,
            tickets=tickets,
            chat_messages=chat_messages,
            feedback=feedback,
            login_failures=login_failures,
            suggestions=suggestions,
            tracker_events=tracker_events,
        )
        record_audit(
            db,
            actor=actor,
            action="retention.purge",
            entry_id=None,
            revision=None,
            detail=asdict(report),
        )
    # Deleted pages may still sit in the write-ahead log: fold it into the file (where
    # secure_delete zeroed them) and empty it.
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return report
