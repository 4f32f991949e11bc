"""Storage: schema migration and version checks on real SQLite files."""

from __future__ import annotations

import sqlite3

import pytest

from knowledge.model import KnowledgeError
from knowledge.store import SCHEMA_VERSION, SchemaTooNew, get_entry, open_db, revisions_of


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE entries (id TEXT PRIMARY KEY, title TEXT, category TEXT, department TEXT,
          contact TEXT, questions TEXT, answer TEXT, documents TEXT, fees TEXT, tags TEXT,
          staff_notes TEXT, source_url TEXT, valid_from TEXT, valid_until TEXT, status TEXT,
          revision INTEGER, updated_at TEXT);
        CREATE TABLE kb_meta (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE tickets (id INTEGER PRIMARY KEY, session_id TEXT, status TEXT,
          reason TEXT, channel TEXT, transcript TEXT, candidates TEXT, created_at TEXT,
          updated_at TEXT);
        INSERT INTO entries VALUES ('dog', '犬の登録', '', '', '', '["犬を飼った"]', '登録します。',
          '[]', '', '[]', '', '', NULL, NULL, 'published', 3, '2026-01-01T00:00:00+00:00');
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    db = open_db(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    entry = get_entry(db, "dog")
    assert (entry.revision, entry.status, entry.questions) == (3, "published", ("犬を飼った",))
    assert [r.revision for r in revisions_of(db, "dog")] == [3]
    assert "entries" not in db.table_names()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew, match="newer than this program's") as raised:
        open_db(path)
    assert isinstance(raised.value, KnowledgeError) and raised.value.version == SCHEMA_VERSION + 1
