"""Online backup and restore: real SQLite, a real engine, writers running meanwhile."""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from assistant.operations.cli import main
from assistant.retrieval.engine import Engine
from knowledge.backup import STEP_PAGES, BackupError, BackupInvalid, backup, restore
from knowledge.store import SCHEMA_VERSION, audit_log, knowledge_revision, open_db
from knowledge.tickets import open_ticket
from knowledge.workflow import approve, save_draft, submit_for_review
from tests.conftest import STARTER, make_settings

NAME = re.compile(r"madoguchi-r(\d{6})-\d{8}T\d{6}Z(-pre-restore)?(-\d+)?\.db")

# Phrasings from the starter entries, and a few paraphrases, clarifications and misses.
QUESTIONS = [
    yaml.safe_load(path.read_text("utf-8"))["questions"][1]
    for path in sorted(STARTER.glob("*.yaml"))[::6]
] + ["住民票 コンビニ", "引っ越してきました", "会社を辞めたので国保に入りたい",
     "粗大ごみを出したい", "税金を払いたい", "明日の天気は？"]  # fmt: skip


def answers(engine: Engine) -> list[tuple]:
    """What the engine says to each question: decision, entry, revision, exact text."""
    said = []
    for question in QUESTIONS:
        decision = engine.search(question)
        best = decision.best
        text = engine.entry(best.entry_id, best.revision).answer if best else None
        said.append((question, decision.kind, best and best.entry_id, best and best.revision, text))
    return said


def fingerprint(db_path: Path) -> tuple[str, int]:
    """The database's whole content (as an SQL dump) and knowledge revision."""
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        dump = "\n".join(conn.iterdump())
    db = open_db(db_path)
    revision = knowledge_revision(db)
    db.close()
    return hashlib.sha256(dump.encode()).hexdigest(), revision


def inside(path: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


@contextlib.contextmanager
def handoffs_meanwhile(db_path: Path) -> Iterator[list[int]]:
    """Open tickets from another connection, without pause, until the block ends."""
    stop, opened, failures = threading.Event(), [], []

    def write() -> None:
        db = open_db(db_path)
        try:
            while not stop.is_set():
                ticket = open_ticket(
                    db,
                    session_id=f"s-{len(opened)}",
                    reason="requested_human",
                    transcript=[{"role": "resident", "text": "人と話したい"}],
                    candidates=[],
                )
                opened.append(ticket.id)
        except Exception as error:  # reported below
            failures.append(error)
        finally:
            db.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        yield opened
    finally:
        stop.set()
        writer.join()
    assert not failures


def publish_change(db, entry_id: str, answer: str) -> None:
    """Edit an entry's answer and publish it, as two editors would."""
    data = {**yaml.safe_load((STARTER / f"{entry_id}.yaml").read_text("utf-8")), "answer": answer}
    draft = save_draft(db, data, actor="sato")
    submit_for_review(db, entry_id, draft.revision, actor="sato")
    approve(db, entry_id, draft.revision, actor="suzuki")


def test_backup_while_others_write_is_one_snapshot_named_by_its_revision(
    starter_settings, tmp_path
):
    db_path = starter_settings.database_path
    db = open_db(db_path)
    # Residents' feedback makes the database large enough to be copied in several steps.
    db["feedback"].insert_all(
        {"session_id": f"f-{n}", "helpful": 1, "text": "とても分かりやすかった。" * 150, "at": ""}
        for n in range(3000)
    )
    db.close()
    base = fingerprint(db_path)[1]
    stop, failures = threading.Event(), []

    def write() -> None:  # a chat handing off and editors publishing, without pause
        db = open_db(db_path)
        try:
            for n in range(10_000):
                if stop.is_set():
                    return
                open_ticket(
                    db,
                    session_id=f"s-{n}",
                    reason="requested_human",
                    transcript=[{"role": "resident", "text": "人と話したい"}],
                    candidates=[],
                )
                data = {
                    "id": f"test-{n}",
                    "title": f"試験項目{n}",
                    "questions": [f"試験項目{n}について知りたい"],
                    "answer": "試験の回答です。",
                }
                save_draft(db, data, actor="sato")
                submit_for_review(db, f"test-{n}", 1, actor="sato")
                approve(db, f"test-{n}", 1, actor="suzuki")
        except Exception as error:  # reported by the test below
            failures.append(error)
        finally:
            db.close()

    writer = threading.Thread(target=write)
    writer.start()
    folder, seen, deadline = tmp_path / "backups", {}, time.monotonic() + 60
    folder.mkdir()
    try:
        while len(seen) < 4 and time.monotonic() < deadline and not failures:
            steps: list[tuple[int, int]] = []
            path = backup(db_path, folder, lambda done, total, s=steps: s.append((done, total)))
            seen[path] = int(NAME.fullmatch(path.name).group(1))
            # Several steps, never restarted by a commit elsewhere: one snapshot.
            done, total = [d for d, _ in steps], steps[-1][1]
            assert len(steps) == math.ceil(total / STEP_PAGES) > 1
            assert done == sorted(set(done)) and done[-1] == total
    finally:
        stop.set()
        writer.join()
    assert not failures
    assert len(set(seen.values())) >= 4, "the backups should fall between different publishes"
    for path, named in seen.items():
        assert inside(path, "PRAGMA integrity_check") == [("ok",)]
        assert inside(path, "PRAGMA journal_mode") == [("delete",)]
        assert not Path(f"{path}-wal").exists()
        revision = int(inside(path, "SELECT value FROM kb_meta")[0][0])
        assert named == revision
        # One snapshot: every publish counted in the revision is there, and at most
        # the ticket opened just before the next one.
        publishes = inside(path, "SELECT count(*) FROM audit WHERE action = 'publish'")[0][0]
        tickets = inside(path, "SELECT count(*) FROM tickets")[0][0]
        assert publishes == revision - base
        assert tickets in (publishes, publishes + 1)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in seen)


def test_backup_to_a_new_file_never_overwrites(starter_settings, tmp_path):
    target = tmp_path / "nightly.db"
    assert backup(starter_settings.database_path, target) == target
    assert target.stat().st_mode & 0o777 == 0o600  # residents' messages are in it
    with pytest.raises(BackupError, match="nightly.db already exists"):
        backup(starter_settings.database_path, target)
    with pytest.raises(BackupError, match="no database at"):
        backup(tmp_path / "none" / "madoguchi.db", tmp_path)
    made = backup(starter_settings.database_path, f"{tmp_path / 'new' / 'dir'}/")
    assert made.parent == tmp_path / "new" / "dir" and NAME.fullmatch(made.name)


def test_restore_into_a_fresh_home_answers_exactly_as_at_backup_time(starter_settings, tmp_path):
    said = answers(Engine.load(starter_settings))
    assert sum(kind == "answer" for _, kind, *_ in said) >= 15
    saved = backup(starter_settings.database_path, tmp_path)

    fresh = make_settings(tmp_path / "fresh")
    result = restore(saved, fresh.database_path)
    assert result.safety_backup is None  # nothing was there to save
    assert result.knowledge_revision == result.backup_revision + 1
    assert answers(Engine.load(fresh)) == said


def test_restore_over_a_changed_home_brings_the_old_answers_back_to_a_running_engine(
    starter_settings, tmp_path
):
    engine = Engine.load(starter_settings)
    said = answers(engine)
    saved = backup(starter_settings.database_path, tmp_path)
    db = open_db(starter_settings.database_path)
    publish_change(db, "sodai-gomi", "粗大ごみの受付は終了しました。")
    changed = engine.search("粗大ごみを出したい")
    assert (changed.best.entry_id, changed.best.revision) == ("sodai-gomi", 2)
    before = knowledge_revision(db)

    with handoffs_meanwhile(starter_settings.database_path) as opened:
        result = restore(saved, starter_settings.database_path, actor="cli:tanaka")
        after = len(opened)
        while len(opened) < after + 2:  # the chat goes on handing off after the restore
            time.sleep(0.01)

    assert inside(starter_settings.database_path, "PRAGMA integrity_check") == [("ok",)]
    assert 0 < db["tickets"].count <= len(opened)
    assert result.previous_revision == before
    assert result.knowledge_revision == max(before, result.backup_revision) + 1
    assert knowledge_revision(db) == result.knowledge_revision
    assert answers(engine) == said  # the running engine re-synced on its next search
    assert engine.entry("sodai-gomi").revision == 1
    assert answers(Engine.load(starter_settings, force_rebuild=True)) == said
    last = audit_log(db)[-1]
    assert (last["actor"], last["action"]) == ("cli:tanaka", "restore")
    assert last["detail"]["file"] == str(saved.resolve())
    assert last["detail"]["backup_revision"] == result.backup_revision
    assert last["detail"]["knowledge_revision"] == result.knowledge_revision


def test_the_pre_restore_backup_undoes_the_restore(starter_settings, tmp_path):
    saved = backup(starter_settings.database_path, tmp_path)
    db = open_db(starter_settings.database_path)
    publish_change(db, "sodai-gomi", "粗大ごみの受付は終了しました。")
    changed = fingerprint(starter_settings.database_path)

    first = restore(saved, starter_settings.database_path)
    safety = first.safety_backup
    assert safety.parent == starter_settings.home / "backups"
    assert NAME.fullmatch(safety.name) and safety.name.endswith("-pre-restore.db")
    assert int(NAME.fullmatch(safety.name).group(1)) == changed[1]

    undone = restore(safety, starter_settings.database_path)
    assert undone.backup_revision == changed[1]
    assert undone.knowledge_revision == first.knowledge_revision + 1
    engine = Engine.load(starter_settings)
    entry = engine.entry("sodai-gomi")
    assert (entry.revision, entry.answer) == (2, "粗大ごみの受付は終了しました。")
    actions = [event["action"] for event in audit_log(db)]
    assert actions.count("restore") == 1  # the safety copy predates the first restore
    assert len(list((starter_settings.home / "backups").iterdir())) == 2


def _text(path: Path, saved: Path | None = None) -> None:
    path.write_text("id,title\nsodai-gomi,粗大ごみ\n", "utf-8")


def _truncated(path: Path, saved: Path) -> None:
    path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])


def _foreign(path: Path, saved: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.commit()


def _newer(path: Path, saved: Path) -> None:
    path.write_bytes(saved.read_bytes())
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


@pytest.mark.parametrize(
    "make, message",
    [
        (None, "there is no such file"),
        (_text, "it is not an SQLite database"),
        (_truncated, "it is damaged"),
        (_foreign, "it is not a Madoguchi database (no kb_meta, revisions, audit table)"),
        (_newer, f"schema version {SCHEMA_VERSION + 1} is newer than this program's"),
    ],
)
def test_restore_refuses_a_bad_file_and_changes_nothing(starter_settings, tmp_path, make, message):
    saved = backup(starter_settings.database_path, tmp_path)
    bad = tmp_path / "bad.db"
    if make is not None:
        make(bad, saved)
    before = fingerprint(starter_settings.database_path)
    with pytest.raises(BackupInvalid) as error:
        restore(bad, starter_settings.database_path)
    assert str(error.value).startswith(f"cannot restore {bad}: ")
    assert message in str(error.value)
    assert fingerprint(starter_settings.database_path) == before
    assert not (starter_settings.home / "backups").exists()
    assert not list(starter_settings.home.glob(".restore-*"))  # no staged copy left


def test_restore_of_an_older_schema_migrates_it(starter_settings, tmp_path):
    old = backup(starter_settings.database_path, tmp_path / "old.db")
    with contextlib.closing(sqlite3.connect(old)) as conn:  # as schema version 2 was
        tables = ("chat_messages", "feedback", "auth_sessions", "login_failures", "users")
        for table in (*tables, "suggestions"):
            conn.execute(f"DROP TABLE {table}")
        columns = ("page", "claimed_by", "claimed_at", "resolved_by", "resolved_at", "note")
        for column in (*columns, "question", "answered_entry"):
            conn.execute(f"ALTER TABLE tickets DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 2")
    restore(old, starter_settings.database_path)
    db = open_db(starter_settings.database_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {"chat_messages", "feedback", "users", "auth_sessions"} <= set(db.table_names())
    assert "claimed_by" in db["tickets"].columns_dict


@pytest.fixture
def cli_env(starter_settings, monkeypatch):
    monkeypatch.setenv("MADOGUCHI_HOME", str(starter_settings.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(starter_settings.encoder_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return starter_settings


def test_cli_backup_then_restore_rebuilds_the_index(cli_env, tmp_path, capsys):
    assert main(["backup", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    written = Path(re.search(r"backup written to (\S+) \(knowledge revision 1\)", out)[1])
    assert written.parent == tmp_path and NAME.fullmatch(written.name)

    assert main(["restore", str(written), "--user", "tanaka"]) == 0
    out = capsys.readouterr().out
    assert f"restored {written} (knowledge revision 1); the knowledge revision is now 2" in out
    assert f"saved in {cli_env.home / 'backups'}" in out
    assert "index rebuilt: 84 entries, knowledge revision 2" in out
    db = open_db(cli_env.database_path)
    assert audit_log(db)[-1]["actor"] == "tanaka"


def test_cli_errors_exit_1_with_a_message(cli_env, tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    _text(bad)
    assert main(["restore", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot restore {bad}: it is not an SQLite database\n"
    (tmp_path / "taken.db").write_bytes(b"")
    assert main(["backup", str(tmp_path / "taken.db")]) == 1
    assert "taken.db already exists" in capsys.readouterr().err
