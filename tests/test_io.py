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
    write_rejects,
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


def test_malformed_json_line_names_the_line_and_strict_refuses_the_file(settings, tmp_path):
    db = open_db(settings.database_path)
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n{not json\n", "utf-8")
    with pytest.raises(ImportFailed, match=r"broken.jsonl:2: not valid JSON"):
        import_entries(db, path, "jsonl", strict=True)
    assert current_entries(db) == []


def test_duplicate_ids_in_one_file_are_refused_under_on_duplicate_error(settings, tmp_path):
    db = open_db(settings.database_path)
    path = write_jsonl(tmp_path / "dup.jsonl", [GOOD, GOOD])
    with pytest.raises(
        ImportFailed,
        match=r"dup.jsonl:2: entry 'dog-registration', field 'id': duplicate of dup.jsonl:1",
    ):
        import_entries(db, path, "jsonl", on_duplicate="error")


def test_a_strict_failed_import_leaves_the_database_exactly_as_it_was(starter_settings, tmp_path):
    db = open_db(starter_settings.database_path)
    before = table_dump(db)
    revision = knowledge_revision(db)
    changed = {**GOOD, "id": "juminhyo-copy"}  # valid, would overwrite a starter entry
    path = write_jsonl(tmp_path / "mixed.jsonl", [changed, {**GOOD, "id": "x", "answer": ""}])
    with pytest.raises(ImportFailed):
        import_entries(db, path, "jsonl", publish=True, strict=True)
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
    records.append({**GOOD, "id": "quoted", "title": "'=SUM(B2)", "questions": ["引用"]})
    records.append({**GOOD, "id": "lists", "questions": ["-から始まる質問", "二つ目"]})
    import_entries(db, write_jsonl(tmp_path / "in.jsonl", records), "jsonl", publish=True)
    path = tmp_path / "kb.csv"
    export_entries(db, path, "csv")
    rows = list(csv.reader(io.StringIO(path.read_text("utf-8-sig"), newline="")))
    header = rows[0]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    for n, title in enumerate(FORMULAS):
        assert by_id[f"formula-{n}"]["title"] == "'" + title
    assert by_id["quoted"]["title"] == "''=SUM(B2)"
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


# A city's FAQ file as it is: duplicates, encodings, markers, no ids, rejected records.

KOSEKI = {"id": "koseki", "title": "戸籍謄本を取りたい", "answer": "市民課の窓口で請求できます。"}


def write_csv(path, rows, encoding="utf-8", newline="\r\n"):
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=newline).writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def test_an_exact_duplicate_is_merged_into_the_first_with_a_warning(settings, tmp_path):
    db = open_db(settings.database_path)
    again = {**KOSEKI, "answer": " 市民課の 窓口で、請求できます "}  # spaces, punctuation
    report = import_entries(db, write_jsonl(tmp_path / "f.jsonl", [KOSEKI, again]), "jsonl")
    assert (report.created, report.merged, len(report.rejected)) == (["koseki"], 1, 0)
    assert report.warnings == [
        "f.jsonl:2: entry 'koseki': the same question and answer as entry 'koseki' "
        "(f.jsonl:1); merged into it"
    ]
    assert get_entry(db, "koseki").answer == KOSEKI["answer"]


def test_the_same_answer_with_its_contact_block_moved_is_an_exact_duplicate(settings, tmp_path):
    db = open_db(settings.database_path)
    first = {**KOSEKI, "answer": "窓口で請求できます。\n問い合わせ：市民課（内線101）"}
    moved = {
        **KOSEKI,
        "id": "koseki-2",
        "answer": "問い合わせ：市民課（内線101）\n窓口で請求できます。",
    }
    report = import_entries(db, write_jsonl(tmp_path / "f.jsonl", [first, moved]), "jsonl")
    assert report.created == ["koseki"]
    assert report.warnings == [
        "f.jsonl:2: entry 'koseki-2': the same question and answer (its sentences in another "
        "order) as entry 'koseki' (f.jsonl:1); merged into it"
    ]


def test_an_answer_contained_in_the_other_keeps_the_longer_and_says_which(settings, tmp_path):
    db = open_db(settings.database_path)
    longer = {**KOSEKI, "answer": KOSEKI["answer"] + "手数料は450円です。"}
    report = import_entries(db, write_jsonl(tmp_path / "f.jsonl", [KOSEKI, longer]), "jsonl")
    assert report.merged == 1
    assert report.warnings == [
        "f.jsonl:2: entry 'koseki': the same question, its answer containing the other's as "
        "entry 'koseki' (f.jsonl:1); merged, keeping this longer answer (f.jsonl:2)"
    ]
    assert get_entry(db, "koseki").answer == longer["answer"]
    # The other way round the first, longer one is kept.
    again = import_entries(db, write_jsonl(tmp_path / "g.jsonl", [longer, KOSEKI]), "jsonl")
    assert again.unchanged == ["koseki"]
    assert again.warnings[0].endswith("merged, keeping the longer answer (g.jsonl:1)")


def test_the_same_question_with_a_different_answer_is_two_entries(settings, tmp_path):
    db = open_db(settings.database_path)
    other = {**KOSEKI, "answer": "郵送でも請求できます。本籍地の市区町村に申請書を送ってください。"}
    third = {**KOSEKI, "id": "koseki-yuso", "answer": "コンビニでも取れます。"}
    path = write_jsonl(tmp_path / "f.jsonl", [KOSEKI, other, third])
    report = import_entries(db, path, "jsonl", publish=True)
    assert report.created == ["koseki", "koseki-2", "koseki-yuso"]
    assert report.warnings == [
        "f.jsonl:2: entry 'koseki': the same question with a different answer as entry "
        "'koseki' (f.jsonl:1); imported as a separate entry, with the new id 'koseki-2'",
        "f.jsonl:3: entry 'koseki-yuso': the same question with a different answer as entry "
        "'koseki' (f.jsonl:1); imported as a separate entry",
    ]
    # Both hold the one question: the phrasing rule allows it for entries of one title.
    assert get_entry(db, "koseki-2").questions == get_entry(db, "koseki").questions
    assert get_entry(db, "koseki-2").answer == other["answer"]
    # A re-import finds the same ids: nothing changes.
    assert import_entries(db, path, "jsonl", publish=True).unchanged == [
        "koseki",
        "koseki-2",
        "koseki-yuso",
    ]


def test_an_id_used_twice_for_different_entries(settings, tmp_path):
    db = open_db(settings.database_path)
    other = {"id": "koseki", "title": "印鑑登録をしたい", "answer": "本人が窓口で申請します。"}
    path = write_jsonl(tmp_path / "f.jsonl", [KOSEKI, other])
    with pytest.raises(
        ImportFailed,
        match=r"f.jsonl:2: entry 'koseki', field 'id': duplicate of f.jsonl:1 "
        r"\(different content\)",
    ):
        import_entries(db, path, "jsonl", on_duplicate="error")
    skipped = import_entries(db, path, "jsonl", on_duplicate="skip")
    assert (skipped.created, skipped.skipped) == (["koseki"], 1)
    assert skipped.warnings == [
        "f.jsonl:2: entry 'koseki': the id of f.jsonl:1 with different content; "
        "skipped, the first is kept"
    ]
    report = import_entries(db, path, "jsonl")
    assert (report.unchanged, report.created) == (["koseki"], ["koseki-2"])
    assert report.warnings == [
        "f.jsonl:2: entry 'koseki': the id of f.jsonl:1 with different content, "
        "with the new id 'koseki-2'"
    ]
    assert get_entry(db, "koseki-2").title == "印鑑登録をしたい"


def test_on_duplicate_skip_keeps_only_the_first_of_each_group(settings, tmp_path):
    db = open_db(settings.database_path)
    records = [
        KOSEKI,
        {**KOSEKI, "answer": KOSEKI["answer"] + "手数料は450円です。"},
        {**KOSEKI, "id": "koseki-b", "answer": "郵送で請求できます。"},
        GOOD,
    ]
    path = write_jsonl(tmp_path / "f.jsonl", records)
    report = import_entries(db, path, "jsonl", on_duplicate="skip")
    assert (report.created, report.merged, report.skipped) == (
        ["koseki", "dog-registration"],
        0,
        2,
    )
    assert get_entry(db, "koseki").answer == KOSEKI["answer"]
    assert [w.split(";")[1] for w in report.warnings] == [" skipped, the first is kept"] * 2


def test_on_duplicate_error_lists_every_group_and_changes_nothing(starter_settings, tmp_path):
    db = open_db(starter_settings.database_path)
    before = table_dump(db)
    records = [
        KOSEKI,
        {**KOSEKI, "id": "koseki-a"},
        {**KOSEKI, "id": "koseki-b", "answer": "郵送で請求できます。"},
        {**GOOD, "id": "juminhyo-copy"},
        {**GOOD, "answer": ""},
    ]
    with pytest.raises(ImportFailed) as error:
        import_entries(
            db, write_jsonl(tmp_path / "f.jsonl", records), "jsonl", on_duplicate="error"
        )
    assert error.value.problems == [
        "f.jsonl:5: entry 'dog-registration', field 'answer': is required and must not be empty",
        "f.jsonl:2: entry 'koseki-a': the same question and answer as entry 'koseki' (f.jsonl:1)",
        "f.jsonl:3: entry 'koseki-b': the same question with a different answer as entry "
        "'koseki' (f.jsonl:1)",
    ]
    assert table_dump(db) == before


def test_cp932_csv_with_a_citys_own_columns_and_no_ids(settings, tmp_path):
    db = open_db(settings.database_path)
    rows = [
        ["質問", "回答", "分類", "担当課"],
        ["児童手当はいつ振り込まれますか", "6月、10月、2月に振り込みます。", "子育て", "こども課"],
        ["粗大ごみの出し方", "申し込みが必要です。<br>電話で受け付けます。", "ごみ", "環境課"],
    ]
    path = write_csv(tmp_path / "faq.csv", rows, encoding="cp932")
    report = import_entries(db, path, "csv")
    assert report.notes == [
        "faq.csv: read as CP932 (Shift_JIS)",
        "2 entries without an id: ids derived from the question",
    ]
    entries = {e.title: e for e in current_entries(db)}
    teate = entries["児童手当はいつ振り込まれますか"]
    assert re.fullmatch(r"faq-[0-9a-f]{10}", teate.id)
    assert teate.questions == ("児童手当はいつ振り込まれますか",)
    assert (teate.category, teate.department) == ("子育て", "こども課")
    assert entries["粗大ごみの出し方"].answer == "申し込みが必要です。\n電話で受け付けます。"
    # The ids come from the question, not the row: reordered, the same entries update.
    write_csv(path, [rows[0], rows[2], rows[1]], encoding="cp932")
    assert sorted(import_entries(db, path, "csv").unchanged) == sorted(
        e.id for e in entries.values()
    )


@pytest.mark.parametrize(
    "encoding, bom, newline",
    [("utf-8", True, "\r\n"), ("utf-8", False, "\n"), ("cp932", False, "\r\n")],
)
def test_csv_encodings_and_line_ends_are_detected(settings, tmp_path, encoding, bom, newline):
    rows = [["ID", "タイトル", "回答"], ["a-1", "住民票", "一行目\r\n二行目"]]
    path = write_csv(tmp_path / "k.csv", rows, encoding=encoding, newline=newline)
    if bom:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    [entry] = validate_file(path, "csv")
    assert (entry.id, entry.title, entry.answer) == ("a-1", "住民票", "一行目\n二行目")


def test_jsonl_with_a_byte_order_mark_and_crlf(settings, tmp_path):
    path = tmp_path / "k.jsonl"
    text = json.dumps(GOOD, ensure_ascii=False) + "\r\n" + json.dumps(KOSEKI, ensure_ascii=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8") + b"\r\n")
    assert [e.id for e in validate_file(path, "jsonl")] == ["dog-registration", "koseki"]


def test_a_file_that_is_neither_utf8_nor_cp932_names_the_byte(settings, tmp_path):
    db = open_db(settings.database_path)
    path = tmp_path / "k.csv"
    path.write_bytes("質問,回答\r\n".encode() + b"\x82\xa0\xff\xfe,x\r\n")
    before = table_dump(db)
    with pytest.raises(ImportFailed) as error:
        import_entries(db, path, "csv")
    assert error.value.problems == [
        "k.csv: neither UTF-8 nor CP932 (Shift_JIS) text: byte 0x82 at offset 15 (line 2) "
        "is not UTF-8, and byte 0x8f at offset 5 (line 1) is not CP932"
    ]
    assert table_dump(db) == before


@pytest.mark.parametrize("marker", ["<br>", "<BR>", "<br/>", "<Br />", "＜改＞", "<改>", "\\n"])
def test_line_break_markers_become_line_breaks_in_answers_and_spaces_in_titles(tmp_path, marker):
    record = {
        "id": "m",
        "title": f"住民票の{marker}取り方",
        "answer": f"窓口で取れます。{marker}{marker}本人確認書類が要ります。",
    }
    [entry] = validate_file(write_jsonl(tmp_path / "m.jsonl", [record]), "jsonl")
    assert entry.answer == "窓口で取れます。\n\n本人確認書類が要ります。"
    assert entry.title == "住民票の 取り方"
    assert entry.questions == ("住民票の 取り方",)


def test_a_backslash_n_in_a_text_with_real_line_breaks_is_kept(tmp_path):
    record = {**GOOD, "answer": "保存先は C:\\new です。\n以上です。"}
    [entry] = validate_file(write_jsonl(tmp_path / "m.jsonl", [record]), "jsonl")
    assert entry.answer == record["answer"]


def test_an_entry_without_questions_is_asked_by_its_title(settings, tmp_path):
    db = open_db(settings.database_path)
    import_entries(db, write_jsonl(tmp_path / "f.jsonl", [KOSEKI]), "jsonl")
    assert get_entry(db, "koseki").questions == ("戸籍謄本を取りたい",)


def test_rejected_records_are_reported_and_the_rest_imported(settings, tmp_path):
    db = open_db(settings.database_path)
    path = tmp_path / "f.jsonl"
    lines = [
        json.dumps(GOOD, ensure_ascii=False),
        "{not json",
        json.dumps({**KOSEKI, "answer": "  "}, ensure_ascii=False),
        json.dumps(["a list"]),
        json.dumps({**KOSEKI, "id": "inkan", "title": "印鑑登録", "answer": "<b>太字</b>"}),
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    report = import_entries(db, path, "jsonl", publish=True)
    assert report.created == ["dog-registration"]
    assert [(r.where, r.reasons) for r in report.rejected] == [
        (
            "f.jsonl:2",
            [
                "f.jsonl:2: not valid JSON (Expecting property name enclosed in "
                "double quotes at column 2)"
            ],
        ),
        (
            "f.jsonl:3",
            ["f.jsonl:3: entry 'koseki', field 'answer': is required and must not be empty"],
        ),
        ("f.jsonl:4", ["f.jsonl:4: entry '?', field '-': an entry must be an object, got list"]),
        (
            "f.jsonl:5",
            [
                "f.jsonl:5: entry 'inkan', field 'answer': must not contain HTML tags "
                "(such as <script>); use plain text or Markdown"
            ],
        ),
    ]
    assert report.summary() == (
        "created 1, updated 0, unchanged 0, rejected 4, merged 0, skipped 0, warned 0"
    )
    out = tmp_path / "rejects.jsonl"
    write_rejects(out, report.rejected)
    written = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert written[0] == {
        "where": "f.jsonl:2",
        "reasons": report.rejected[0].reasons,
        "record": "{not json",
    }
    assert written[2]["record"] == ["a list"]
    assert written[3]["record"]["answer"] == "<b>太字</b>"


def test_a_phrasing_taken_by_an_entry_in_the_database_rejects_only_that_record(
    starter_settings, tmp_path
):
    db = open_db(starter_settings.database_path)
    taken = get_entry(db, "sodai-gomi").questions[0]
    records = [GOOD, {**KOSEKI, "questions": [taken]}]
    report = import_entries(db, write_jsonl(tmp_path / "f.jsonl", records), "jsonl")
    assert report.created == ["dog-registration"]
    [rejected] = report.rejected
    assert rejected.where == "f.jsonl:2"
    assert "of entry 'sodai-gomi'" in rejected.reasons[0]


@pytest.mark.parametrize(
    "content, options",
    [
        (b"\xff\xfe\x00broken", {}),  # unreadable
        (b"id,title,answer,colour\r\na,t,x,red\r\n", {}),  # unknown column
        (b"id,title,answer\r\njuminhyo-copy,t,x\r\nb,t,x\r\n", {"on_duplicate": "error"}),
        (b"id,title,answer\r\njuminhyo-copy,t,x\r\nb,,\r\n", {"strict": True}),
        (b"id,title,answer\r\nBad Id,t,x\r\nb,t,\r\n", {}),  # every record rejected
    ],
)
def test_nothing_changes_on_a_hard_error(starter_settings, tmp_path, content, options):
    db = open_db(starter_settings.database_path)
    before = table_dump(db)
    path = tmp_path / "k.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFailed, match="nothing was changed"):
        import_entries(db, path, "csv", publish=True, **options)
    assert table_dump(db) == before


def test_every_problem_of_the_file_is_reported_at_once(tmp_path):
    rows = [
        ["番号", "質問", "回答", ""],
        ["1", "住民票", "窓口で。", ""],
        ["2", "", "", ""],  # no question, no answer
        ["3", "印鑑", "<script>x</script>", ""],
        ["4", "戸籍", "窓口で。", "余計な値"],
        ["5", "住民票", "窓口で"],  # a cell short
        ["Bad Id", "住民票の写し", "窓口で。", ""],
    ]
    with pytest.raises(ImportFailed) as error:
        validate_file(write_csv(tmp_path / "k.csv", rows), "csv")
    assert error.value.problems == [
        "k.csv:3: entry '2', field 'title': is required and must not be empty",
        "k.csv:3: entry '2', field 'questions': needs at least one item",
        "k.csv:3: entry '2', field 'answer': is required and must not be empty",
        "k.csv:4: entry '3', field 'answer': must not contain HTML tags (such as <script>); "
        "use plain text or Markdown",
        "k.csv:5: cell 4 has a value but its column no heading",
        "k.csv:6: has 3 cells; the header has 4",
        "k.csv:7: entry 'Bad Id', field 'id': must be 1-80 lowercase letters, digits or "
        "hyphens, starting with a letter or digit",
    ]
