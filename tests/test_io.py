"""Import and export: exact rows, all-or-nothing failures, deterministic output."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import threading

import pytest

from knowledge.city import CityProfile
from knowledge.io import (
    CSV_LIST_SEPARATOR,
    ImportFailed,
    export_entries,
    import_entries,
    validate_file,
)
from knowledge.model import KnowledgeError
from knowledge.store import current_entries, get_entry, knowledge_revision, open_db
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


def table_dump(db) -> list[list[tuple]]:
    return [
        db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("revisions", "audit", "kb_meta")
    ]


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
    with pytest.raises(KnowledgeError, match="unknown format 'xml'"):
        import_entries(db, write_jsonl(tmp_path / "a.jsonl", [GOOD]), "xml")


def test_yaml_file_id_must_match_its_name(settings, tmp_path):
    folder = tmp_path / "entries"
    folder.mkdir()
    (folder / "other-name.yaml").write_text(
        "id: dog-registration\ntitle: 犬\nquestions: [犬]\nanswer: 登録します。\n", "utf-8"
    )
    with pytest.raises(ImportFailed, match="other-name.yaml: id 'dog-registration' must match"):
        import_entries(open_db(settings.database_path), folder, "yaml")


@pytest.mark.parametrize(
    "fmt, name", [("jsonl", "kb.jsonl"), ("yaml", "kb"), ("yaml", "kb.yaml"), ("csv", "kb.csv")]
)
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
    entries = current_entries(open_db(starter_settings.database_path))
    assert len(entries) == len(list(STARTER.glob("*.yaml"))) >= 80
    assert {e.status for e in entries} == {"published"}
    city = CityProfile.load()
    for entry in entries:
        assert len(entry.questions) >= 5, entry.id
        assert entry.department in city.departments, entry.id
        assert "{{" not in city.render(entry.answer), entry.id


def test_starter_entries_validate_as_files():
    assert len(validate_file(STARTER, "yaml")) >= 80


def test_csv_export_opens_in_excel(starter_settings, tmp_path):
    path = tmp_path / "kb.csv"
    export_entries(open_db(starter_settings.database_path), path, "csv")
    data = path.read_bytes()
    assert data.startswith("\ufeff".encode())  # the BOM Excel needs to read UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0][:4] == ["id", "title", "category", "department"]
    juminhyo = next(row for row in rows if row[0] == "juminhyo-copy")
    questions = juminhyo[rows[0].index("questions")].split(CSV_LIST_SEPARATOR)
    assert questions == list(
        get_entry(open_db(starter_settings.database_path), "juminhyo-copy").questions
    )
    assert b"\r\n" in data


def test_csv_with_an_unknown_column_is_rejected(settings, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("\ufeffid,title,questions,answer,colour\r\na,t,q,本文,red\r\n", "utf-8")
    with pytest.raises(ImportFailed, match="bad.csv: unknown column 'colour'"):
        import_entries(open_db(settings.database_path), path, "csv")


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {**GOOD, "answer": "[詳細](javascript:alert(1))"},
            "field 'answer': link target 'javascript:",
        ),
        ({**GOOD, "answer": "窓口は{{受付時間}}です"}, "unknown placeholder {{受付時間}}"),
        ({**GOOD, "source_url": "ftp://example.jp"}, "field 'source_url': must start with http"),
        ({**GOOD, "questions": ["一行目\n二行目"]}, "item 1 must be a single line"),
        # A reference-style link: [x][1] with its target on a line of its own.
        (
            {**GOOD, "answer": "[詳細][1]\n\n[1]: javascript:alert(1)"},
            "field 'answer': link target 'javascript:alert(1)'",
        ),
        ({**GOOD, "answer": "[詳細][a]\n\n[a]: <JavaScript:x>"}, "link target 'JavaScript:x'"),
        # Invisible characters that make a text read differently from what it holds.
        ({**GOOD, "title": "犬の登録\u202etxt.exe"}, "field 'title': must not contain control"),
        ({**GOOD, "fees": "無料\u2066"}, "field 'fees': must not contain control"),
        ({**GOOD, "questions": ["犬\u200bを飼う"]}, "field 'questions': item 1 must not contain"),
        ({**GOOD, "department": "市民\u0085課"}, "field 'department': must not contain control"),
        ({**GOOD, "staff_notes": "\ufeffメモ\u061c"}, "field 'staff_notes': must not contain"),
        # HTML is refused in every field, not only the answer.
        ({**GOOD, "title": "<img src=x onerror=alert(1)>"}, "field 'title': must not contain HTML"),
        ({**GOOD, "tags": ["<b>犬</b>"]}, "field 'tags': item 1 must not contain HTML"),
        ({**GOOD, "staff_notes": "<!-- x -->"}, "field 'staff_notes': must not contain HTML"),
        # Entries are public: a My Number or a card number has no place in one.
        ({**GOOD, "staff_notes": "例 1234 5678 9012"}, "field 'staff_notes': holds what looks"),
    ],
)
def test_validate_file_reports_unsafe_content(tmp_path, record, expected):
    with pytest.raises(ImportFailed, match=re.escape(expected)):
        validate_file(write_jsonl(tmp_path / "v.jsonl", [record]), "jsonl")


def test_the_same_phrasing_in_two_entries_of_one_file_is_rejected(tmp_path):
    other = {**GOOD, "id": "cat-registration", "title": "猫"}
    with pytest.raises(
        ImportFailed, match="is the same as 「犬を飼い始めた」 of entry 'dog-registration'"
    ):
        validate_file(write_jsonl(tmp_path / "v.jsonl", [GOOD, other]), "jsonl")


def test_concurrent_imports_from_threads_all_land(settings, tmp_path):
    """FastAPI runs sync handlers in a thread pool; writes from many threads must not
    fail with 'database is locked' or lose rows."""
    db_path = settings.database_path
    open_db(db_path).close()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            db = open_db(db_path)
            path = write_jsonl(
                tmp_path / f"{n}.jsonl",
                [{**GOOD, "id": f"entry-{n}", "questions": [f"犬を飼い始めた {n}匹目"]}],
            )
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
    assert db.execute("SELECT count(*) FROM revisions").fetchone()[0] == 16
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


FORMULAS = ['=HYPERLINK("http://evil.example","詳細")', "+81 の国番号", "-1+1", "@SUM(A1)"]


def test_csv_export_neutralises_formulas_and_import_restores_them(settings, tmp_path):
    """A cell Excel would run (=, +, -, @, tab, CR first) is written as text ('), and
    import takes the ' off again: the round trip gives back exactly what was stored."""
    db = open_db(settings.database_path)
    records = [
        {**GOOD, "id": f"formula-{n}", "title": title, "questions": [f"{title}の質問"]}
        for n, title in enumerate(FORMULAS)
    ]
    # A title that already starts with ' before a formula character keeps it, too.
    records.append({**GOOD, "id": "quoted", "title": "'=1+1", "questions": ["引用"]})
    records.append({**GOOD, "id": "lists", "questions": ["-から始まる質問", "二つ目"]})
    import_entries(db, write_jsonl(tmp_path / "in.jsonl", records), "jsonl", publish=True)
    path = tmp_path / "kb.csv"
    export_entries(db, path, "csv")
    rows = list(csv.reader(io.StringIO(path.read_text("utf-8-sig"), newline="")))
    header = rows[0]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    for n, title in enumerate(FORMULAS):
        assert by_id[f"formula-{n}"]["title"] == "'" + title
    assert by_id["quoted"]["title"] == "''=1+1"
    assert by_id["lists"]["questions"] == "'-から始まる質問\n二つ目"
    # Safe cells are written as they are.
    assert by_id["formula-0"]["answer"] == GOOD["answer"]
    assert not any(
        cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row
    )
    other = open_db(tmp_path / "other.db")
    import_entries(other, path, "csv", publish=True)
    originals = {e.id: e.content() for e in current_entries(db)}
    assert {e.id: e.content() for e in current_entries(other)} == originals
    again = tmp_path / "again.csv"
    export_entries(other, again, "csv")
    assert again.read_bytes() == path.read_bytes()


def test_a_leading_apostrophe_before_ordinary_text_is_kept_on_import(settings, tmp_path):
    path = tmp_path / "hand.csv"
    path.write_text("\ufeffid,title,questions,answer\r\na,'80年代の記録,'=計算,'本文\r\n", "utf-8")
    entry = validate_file(path, "csv")[0]
    # Only a ' that neutralises a formula is ours to take off.
    assert (entry.title, entry.questions, entry.answer) == ("'80年代の記録", ("=計算",), "'本文")
