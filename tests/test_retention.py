"""Retention on real SQLite files: what is older than the period goes, from the knowledge
database and from Rasa's tracker store; open tickets and the audit log stay."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from assistant.operations import cli
from assistant.operations.retention import DAY_S, RETRY_S, DailyPurge
from knowledge.retention import purge
from knowledge.store import audit_log, open_db
from knowledge.tickets import open_ticket, record_feedback, reply_to_ticket, resolve_ticket
from tests.conftest import make_settings

NOW = dt.datetime.now(dt.timezone.utc)
OLD = (NOW - dt.timedelta(days=91)).isoformat(timespec="seconds")
RECENT = (NOW - dt.timedelta(days=89)).isoformat(timespec="seconds")

# The table Rasa 3.6's SQL tracker store makes (rasa.core.tracker_store.SQLEvent).
RASA_EVENTS = """CREATE TABLE events (
    id INTEGER NOT NULL PRIMARY KEY,
    sender_id VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data TEXT
)"""


def aged_ticket(db, session: str, *, resolved_at: str | None, created_at: str) -> int:
    """A ticket with a staff reply, resolved (or not), its times set back."""
    ticket = open_ticket(
        db,
        session_id=session,
        reason="requested_human",
        transcript=[{"role": "resident", "text": f"{session} の質問"}],
        candidates=[],
    )
    reply_to_ticket(db, ticket.id, "sato", "お答えします")
    if resolved_at:
        resolve_ticket(db, ticket.id, "sato", "対応済み")
    db.execute(
        "UPDATE tickets SET created_at = ?, resolved_at = ? WHERE id = ?",
        [created_at, resolved_at, ticket.id],
    )
    db.execute("UPDATE chat_messages SET at = ? WHERE ticket_id = ?", [created_at, ticket.id])
    db.conn.commit()
    return ticket.id


@pytest.fixture
def home(settings):
    db = open_db(settings.database_path)
    aged_ticket(db, "old-resolved", resolved_at=OLD, created_at=OLD)
    aged_ticket(db, "old-open", resolved_at=None, created_at=OLD)
    aged_ticket(db, "recent-resolved", resolved_at=RECENT, created_at=RECENT)
    for at in (OLD, RECENT):
        record_feedback(db, session_id="s", entry_id="x", revision=1, helpful=True, text="ok")
        db.execute("UPDATE feedback SET at = ? WHERE id = last_insert_rowid()", [at])
        db["login_failures"].insert({"name": "someone", "client": "10.0.0.1", "at": at})
    db.conn.commit()
    db.close()
    settings.rasa_dir.mkdir(parents=True)
    with sqlite3.connect(settings.trackers_path) as trackers:
        trackers.execute("PRAGMA journal_mode = WAL")
        trackers.execute(RASA_EVENTS)
        for sender, moment in (("old", NOW - dt.timedelta(days=100)), ("new", NOW)):
            for n in range(3):
                trackers.execute(
                    "INSERT INTO events (sender_id, type_name, timestamp, data) "
                    "VALUES (?, 'user', ?, ?)",
                    [sender, moment.timestamp() + n, '{"text": "\\u4f4f\\u6c11\\u7968"}'],
                )
    trackers.close()
    return settings


def rows(settings, sql: str) -> list[tuple]:
    db = open_db(settings.database_path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_madoguchi_purge_deletes_what_is_older_than_the_period(home, monkeypatch, capsys):
    monkeypatch.setenv("MADOGUCHI_HOME", str(home.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(home.encoder_path))
    assert cli.main(["purge", "--user", "yamada"]) == 0
    assert "1 resolved tickets" in capsys.readouterr().out  # only one was old
    sessions = [r[0] for r in rows(home, "SELECT session_id FROM tickets ORDER BY id")]
    # An open ticket stays however old: a person still owes the resident an answer.
    assert sessions == ["old-open", "recent-resolved"]
    messages = rows(home, "SELECT at FROM chat_messages ORDER BY id")
    assert all(at >= RECENT for (at,) in messages) and len(messages) == 2
    assert rows(home, "SELECT at FROM feedback") == [(RECENT,)]
    assert rows(home, "SELECT at FROM login_failures") == [(RECENT,)]
    with sqlite3.connect(home.trackers_path) as trackers:
        left = trackers.execute("SELECT DISTINCT sender_id FROM events").fetchall()
    assert left == [("new",)]
    event = audit_log(open_db(home.database_path))[-1]
    assert (event["actor"], event["action"]) == ("yamada", "retention.purge")
    assert event["detail"] == {
        "days": 90,
        "before": event["detail"]["before"],
        "tickets": 1,
        "chat_messages": 3,  # both old replies and the old resolved notice
        "feedback": 1,
        "login_failures": 1,
        "suggestions": 0,
        "tracker_events": 3,
    }


def test_the_period_is_the_setting_or_the_option(home, monkeypatch):
    monkeypatch.setenv("MADOGUCHI_HOME", str(home.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(home.encoder_path))
    monkeypatch.setenv("MADOGUCHI_RETENTION_DAYS", "365")
    assert cli.main(["purge"]) == 0
    assert len(rows(home, "SELECT id FROM tickets")) == 3  # nothing is a year old
    assert cli.main(["purge", "--days", "30"]) == 0
    assert [r[0] for r in rows(home, "SELECT session_id FROM tickets")] == ["old-open"]


def test_purging_twice_deletes_nothing_more(home):
    db = open_db(home.database_path)
    first = purge(db, days=90, trackers_path=home.trackers_path, now=NOW)
    second = purge(db, days=90, trackers_path=home.trackers_path, now=NOW)
    assert first.tickets == 1 and first.tracker_events == 3
    assert (second.tickets, second.chat_messages, second.tracker_events) == (0, 0, 0)


def test_deleted_text_is_overwritten_on_disk(home):
    """secure_delete: the old ticket's text does not stay in the file's free pages."""
    assert b"old-resolved" in home.database_path.read_bytes() + (
        home.database_path.with_name("madoguchi.db-wal").read_bytes()
        if home.database_path.with_name("madoguchi.db-wal").exists()
        else b""
    )
    db = open_db(home.database_path)
    purge(db, days=90, trackers_path=home.trackers_path, now=NOW)
    db.close()
    stored = b"".join(p.read_bytes() for p in home.home.glob("madoguchi.db*"))
    assert "old-resolved の質問".encode() not in stored


def test_the_rasa_store_may_not_exist_yet(settings):
    db = open_db(settings.database_path)
    report = purge(db, days=90, trackers_path=settings.trackers_path)
    assert report.tracker_events == 0 and not settings.trackers_path.exists()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "100000"])
def test_a_bad_period_is_refused(settings, value, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["purge", "--days", value])
    assert exited.value.code == 2 and "is not a number of days" in capsys.readouterr().err
    monkeypatch.setenv("MADOGUCHI_RETENTION_DAYS", value)
    monkeypatch.setenv("MADOGUCHI_HOME", str(settings.home))
    assert cli.main(["purge"]) == 1
    assert "MADOGUCHI_RETENTION_DAYS" in capsys.readouterr().err


def test_serve_purges_at_start_then_daily(home, tmp_path):
    clock = [1000.0]
    daily = DailyPurge(home, clock=lambda: clock[0])
    assert daily.tick().tickets == 1  # at start
    assert daily.tick() is None  # not again the same day
    clock[0] += DAY_S - 1
    assert daily.tick() is None
    clock[0] += 1
    assert daily.tick() is not None
    # A failing run is logged and tried again an hour later, never raised.
    broken = DailyPurge(make_settings(tmp_path / "file"), clock=lambda: clock[0])
    (tmp_path / "file").write_text("not a directory")
    assert broken.tick() is None
    assert broken.next_run == clock[0] + RETRY_S


def test_suggested_wordings_are_kept_for_the_period_a_rejection_from_when_it_was_made(
    starter_settings,
):
    from knowledge.suggestions import reject, suggest

    db = open_db(starter_settings.database_path)
    ids = {
        text: suggest(db, entry_id="sodai-gomi", text=text, source="resident", actor="resident")
        for text in (
            "冷蔵庫を捨てたい",
            "ソファを処分したい",
            "タンスを捨てる方法",
            "自転車を捨てたい",
        )
    }
    reject(db, [ids["タンスを捨てる方法"], ids["自転車を捨てたい"]], actor="suzuki")
    ages = {  # (suggested, rejected)
        "冷蔵庫を捨てたい": (OLD, None),  # open and old: deleted
        "ソファを処分したい": (RECENT, None),  # open and recent: kept
        "タンスを捨てる方法": (OLD, RECENT),  # rejected lately: remembered still
        "自転車を捨てたい": (OLD, OLD),  # rejected long ago: deleted
    }
    for text, (created, decided) in ages.items():
        db.execute(
            "UPDATE suggestions SET created_at = ?, decided_at = COALESCE(?, decided_at) "
            "WHERE id = ?",
            [created, decided, ids[text]],
        )
    db.conn.commit()
    report = purge(db, days=90, now=NOW)
    assert report.suggestions == 2 and "2 suggested phrasings" in report.summary()
    left = rows(starter_settings, "SELECT text, status FROM suggestions ORDER BY id")
    assert left == [("ソファを処分したい", "open"), ("タンスを捨てる方法", "rejected")]
    # The remembered rejection still works: the same words are not suggested again.
    again = suggest(db, entry_id="sodai-gomi", text="タンスを捨てる方法", source="staff", actor="x")
    assert rows(starter_settings, f"SELECT status FROM suggestions WHERE id = {again}") == [
        ("rejected",)
    ]
