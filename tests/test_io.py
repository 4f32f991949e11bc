"""Import and export: exact rows, all-or-nothing failures, deterministic output."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from knowledge.io import ImportFailed, export_entries, import_entries
from knowledge.model import KnowledgeError
from knowledge.store import all_entries, get_entry, knowledge_revision, open_db
from tests.conftest import STARTER

GOOD = {
    "id": "dog-registration",
    "title": "犬の登録",
    "questions": ["犬を飼い始めた"],
    "answer": "犬を飼い始めたら30日以内に登録してください。",
}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def table_dump(db) -> list[tuple]:
    return db.execute("SELECT * FROM entries ORDER BY id").fetchall()


def test_import_jsonl_stores_the_exact_entry(settings, tmp_path):
    db = open_db(settings.database_path)
    report = import_entries(db, write_jsonl(tmp_path / "a.jsonl", [GOOD]), "jsonl", publish=True)
    assert (report.created, report.updated, report.unchanged) == (["dog-registration"], [], [])
    entry = get_entry(db, "dog-registration")
    assert entry.questions == ("犬を飼い始めた",)
    assert entry.answer == GOOD["answer"]
    assert (entry.status, entry.revision) == ("published", 1)
    assert knowledge_revision(db) == 1


def test_reimport_is_unchanged_and_a_change_bumps_the_revision(settings, tmp_path):
    db = open_db(settings.database_path)
    path = write_jsonl(tmp_path / "a.jsonl", [GOOD])
    import_entries(db, path, "jsonl", publish=True)
    assert import_entries(db, path, "jsonl", publish=True).unchanged == ["dog-registration"]
    assert knowledge_revision(db) == 1
    write_jsonl(path, [{**GOOD, "answer": "登録は保健所ではなく市で行います。"}])
    assert import_entries(db, path, "jsonl", publish=True).updated == ["dog-registration"]
    assert get_entry(db, "dog-registration").revision == 2
    assert knowledge_revision(db) == 2


@pytest.mark.parametrize(
    "record, expected",
    [
        ({**GOOD, "title": "  "}, "field 'title': is required and must not be empty"),
        ({**GOOD, "questions": []}, "field 'questions': needs at least one item"),
        ({**GOOD, "answer": "x" * 10_001}, "field 'answer': is 10001 characters long"),
        ({**GOOD, "id": "Bad ID"}, "field 'id': must be 1-80 lowercase letters"),
        (
            {**GOOD, "valid_from": "2027-04-01", "valid_until": "2027-03-31"},
            "field 'valid_until': 2027-03-31 is before valid_from 2027-04-01",
        ),
        ({**GOOD, "valid_from": "2027/04/01"}, "field 'valid_from': '2027/04/01' is not a date"),
        ({**GOOD, "answer": "<script>alert(1)</script>"}, "field 'answer': must not contain HTML"),
        ({**GOOD, "colour": "red"}, "field 'colour': is not a known field"),
        ({**GOOD, "tags": "犬"}, "field 'tags': must be a list of text, got str"),
    ],
)
def test_invalid_entries_are_rejected_naming_entry_and_field(settings, tmp_path, record, expected):
    db = open_db(settings.database_path)
    path = write_jsonl(tmp_path / "bad.jsonl", [record])
    with pytest.raises(ImportFailed) as error:
        import_entries(db, path, "jsonl")
    assert "bad.jsonl:1" in str(error.value)
    assert expected in str(error.value)


def test_malformed_json_line_names_the_line(settings, tmp_path):
    db = open_db(settings.database_path)
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n{not json\n", "utf-8")
    with pytest.raises(ImportFailed, match=r"broken.jsonl:2: not valid JSON"):
        import_entries(db, path, "jsonl")


def test_duplicate_ids_in_one_file_are_rejected(settings, tmp_path):
    db = open_db(settings.database_path)
    path = write_jsonl(tmp_path / "dup.jsonl", [GOOD, GOOD])
    with pytest.raises(
        ImportFailed,
        match=r"dup.jsonl:2: entry 'dog-registration', field 'id': duplicate of dup.jsonl:1",
    ):
        import_entries(db, path, "jsonl")


def test_a_failed_import_leaves_the_database_exactly_as_it_was(starter_settings, tmp_path):
    db = open_db(starter_settings.database_path)
    before = table_dump(db)
    revision = knowledge_revision(db)
    changed = {**GOOD, "id": "juminhyo-copy"}  # valid, would overwrite a starter entry
    path = write_jsonl(tmp_path / "mixed.jsonl", [changed, {**GOOD, "id": "x", "answer": ""}])
    with pytest.raises(ImportFailed):
        import_entries(db, path, "jsonl", publish=True)
    assert table_dump(db) == before
    assert knowledge_revision(db) == revision


def test_unknown_format_is_an_error(settings, tmp_path):
    db = open_db(settings.database_path)
    with pytest.raises(KnowledgeError, match="unknown format 'csv'"):
        import_entries(db, write_jsonl(tmp_path / "a.jsonl", [GOOD]), "csv")


def test_yaml_file_id_must_match_its_name(settings, tmp_path):
    folder = tmp_path / "entries"
    folder.mkdir()
    (folder / "other-name.yaml").write_text(
        "id: dog-registration\ntitle: 犬\nquestions: [犬]\nanswer: 登録します。\n", "utf-8"
    )
    with pytest.raises(ImportFailed, match="other-name.yaml: id 'dog-registration' must match"):
        import_entries(open_db(settings.database_path), folder, "yaml")


@pytest.mark.parametrize("fmt, name", [("jsonl", "kb.jsonl"), ("yaml", "kb"), ("yaml", "kb.yaml")])
def test_export_import_export_is_byte_identical(starter_settings, tmp_path, fmt, name):
    first = tmp_path / "first" / name
    first.parent.mkdir()
    export_entries(open_db(starter_settings.database_path), first, fmt)
    other = open_db(tmp_path / "other.db")
    import_entries(other, first, fmt, publish=True)
    second = tmp_path / "second" / name
    second.parent.mkdir()
    export_entries(other, second, fmt)
    if first.is_dir():
        names = sorted(p.name for p in first.iterdir())
        assert names == sorted(p.name for p in second.iterdir())
        assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)
    else:
        assert first.read_bytes() == second.read_bytes()


def test_starter_entries_load_and_are_published(starter_settings):
    entries = all_entries(open_db(starter_settings.database_path))
    assert len(entries) == len(list(STARTER.glob("*.yaml")))
    assert {e.status for e in entries} == {"published"}
    assert all(e.department and len(e.questions) >= 5 for e in entries)


def test_concurrent_imports_from_threads_all_land(settings, tmp_path):
    """FastAPI runs sync handlers in a thread pool; writes from many threads must not
    fail with 'database is locked' or lose rows."""
    db_path = settings.database_path
    open_db(db_path).close()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            db = open_db(db_path)
            path = write_jsonl(tmp_path / f"{n}.jsonl", [{**GOOD, "id": f"entry-{n}"}])
            import_entries(db, path, "jsonl", publish=True)
            db.close()
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 16
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
