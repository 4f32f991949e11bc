"""The madoguchi command, run as a real process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from knowledge.store import SCHEMA_VERSION
from tests.conftest import STARTER, STARTER_COUNT


def madoguchi(
    settings, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MADOGUCHI_HOME": str(settings.home),
        "MADOGUCHI_ENCODER": str(settings.encoder_path),
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_then_export_jsonl(settings, tmp_path):
    result = madoguchi(settings, "kb", "import", str(STARTER), "--format", "yaml", "--publish")
    assert result.returncode == 0, result.stderr
    assert f"created {STARTER_COUNT}, updated 0, unchanged 0, rejected 0" in result.stdout
    # Publishing brought the index up to date: the next search does not rebuild it.
    assert f"index: {STARTER_COUNT} entries" in result.stdout
    search = madoguchi(settings, "search", "粗大ごみを出したい")
    assert search.returncode == 0 and "rebuilding" not in search.stderr, search.stderr
    out = tmp_path / "kb.jsonl"
    assert madoguchi(settings, "kb", "export", str(out), "--format", "jsonl").returncode == 0
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [line["id"] for line in lines] == sorted(p.stem for p in STARTER.glob("*.yaml"))
    assert set(lines[0]) >= {"id", "title", "questions", "answer", "department"}


def test_import_of_a_bad_file_fails_with_the_line_and_changes_nothing(settings, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "t", "questions": ["q"], "answer": "a"}\n{oops\n')
    result = madoguchi(settings, "kb", "import", str(bad), "--format", "jsonl")
    assert result.returncode == 1
    assert "bad.jsonl:2: not valid JSON" in result.stderr
    assert "nothing was changed" in result.stderr


def test_unknown_format_is_a_usage_error(settings, tmp_path):
    result = madoguchi(settings, "kb", "import", str(tmp_path), "--format", "xml")
    assert result.returncode == 2
    assert "invalid choice: 'xml'" in result.stderr


def test_search_json_and_batch(starter_settings, tmp_path):
    result = madoguchi(starter_settings, "search", "粗大ごみを出したい", "--json", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    single = json.loads(result.stdout)
    assert single["decision"] == "answer"
    assert single["results"][0]["entry_id"] == "sodai-gomi"
    assert len(single["results"]) == 3

    batch = tmp_path / "q.jsonl"
    batch.write_text(
        '{"id": "q2", "text": "明日の天気は？"}\n{"id": 7, "text": "粗大ごみを出したい"}\n', "utf-8"
    )
    result = madoguchi(starter_settings, "search", "--batch", str(batch), "--top-k", "2")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["q2", 7]
    assert [r["decision"] for r in rows] == ["handoff", "answer"]
    assert rows[1]["results"][0] == {**single["results"][0]}
    assert set(rows[1]) == {"id", "decision", "confidence", "results"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": 1, "text": "a"}\nnot json\n', "q.jsonl:2: not valid JSON"),
        ('{"id": 1}\n', 'q.jsonl:1: "text" is required'),
        ('{"text": "住民票"}\n', 'q.jsonl:1: "id" is required'),
        ('["id", "text"]\n', "q.jsonl:1: each line must be an object"),
        ('{"id": 1, "text": "' + "あ" * 2001 + '"}\n', "limit 2000"),
    ],
)
def test_batch_rejects_bad_lines(starter_settings, tmp_path, content, message):
    batch = tmp_path / "q.jsonl"
    batch.write_text(content, "utf-8")
    result = madoguchi(starter_settings, "search", "--batch", str(batch))
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_search_needs_text_or_batch(starter_settings):
    result = madoguchi(starter_settings, "search")
    assert result.returncode == 1
    assert "give either TEXT or --batch FILE" in result.stderr


def test_bad_setting_is_named(settings):
    env_settings = settings
    result = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "search", "x"],
        env={
            **os.environ,
            "MADOGUCHI_HOME": str(env_settings.home),
            "MADOGUCHI_ANSWER_THRESHOLD": "high",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "MADOGUCHI_ANSWER_THRESHOLD='high' is not a number" in result.stderr


def test_missing_encoder_says_how_to_build_it(settings, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "search", "住民票"],
        env={
            **os.environ,
            "MADOGUCHI_HOME": str(settings.home),
            "MADOGUCHI_ENCODER": str(tmp_path / "none"),
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "madoguchi encoder build" in result.stderr


def test_validate_passes_on_the_starter_entries_and_fails_naming_entry_and_field(
    settings, tmp_path
):
    ok = madoguchi(settings, "kb", "validate", str(STARTER), "--format", "yaml")
    assert ok.returncode == 0, ok.stderr
    assert f"{STARTER_COUNT} entries are valid" in ok.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "title": "t", "questions": ["q"], "answer": "a", '
        '"valid_from": "2027-04-01", "valid_until": "2027-01-01"}\n',
        "utf-8",
    )
    result = madoguchi(settings, "kb", "validate", str(bad), "--format", "jsonl")
    assert result.returncode == 1
    assert "bad.jsonl:1: entry 'a', field 'valid_until': 2027-01-01 is before" in result.stderr


def test_history_archive_and_rollback(starter_settings):
    archived = madoguchi(starter_settings, "kb", "archive", "sodai-gomi", "--user", "suzuki")
    assert archived.returncode == 0, archived.stderr
    again = madoguchi(starter_settings, "kb", "archive", "sodai-gomi")
    assert again.returncode == 1
    assert "has no published revision to archive" in again.stderr
    rolled = madoguchi(starter_settings, "kb", "rollback", "sodai-gomi", "--to", "1")
    assert "revision 1 published again as revision 2" in rolled.stdout
    history = madoguchi(starter_settings, "kb", "history", "sodai-gomi")
    lines = history.stdout.splitlines()
    assert lines[0].startswith("r1  archived")
    assert lines[1].startswith("r2  published")
    assert any("suzuki" in line and "archive" in line for line in lines)


@pytest.mark.parametrize("command", [["kb", "history", "dog"], ["search", "犬の登録"]])
def test_a_database_newer_than_the_program_is_an_error_line(settings, command):
    """It was a traceback (a bare RuntimeError the CLI did not translate)."""
    settings.home.mkdir(parents=True)
    with sqlite3.connect(settings.database_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    result = madoguchi(settings, *command)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: database schema version {SCHEMA_VERSION + 1} is newer than this program's"
    ), result.stderr
    assert "Traceback" not in result.stderr
