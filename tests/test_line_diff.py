"""The editor history's line diff, on entries built in memory: exact changes per field."""

from __future__ import annotations

import dataclasses

from knowledge.line_diff import field_lines, line_diff
from knowledge.model import Entry

OLD = Entry(
    id="gomi",
    title="ごみの出し方",
    questions=("ごみはいつ出す", "ごみの日"),
    answer="朝8時までに。\n決められた場所に。",
)


def test_an_empty_field_has_no_lines_and_a_list_one_per_item():
    assert field_lines("") == [] and field_lines(None) == []
    assert field_lines(["a", "b"]) == ["a", "b"]
    assert field_lines("一行目\n二行目") == ["一行目", "二行目"]


def test_a_first_revision_is_all_inserts_in_schema_order():
    assert [change["field"] for change in line_diff(None, OLD)] == [
        "id",
        "title",
        "questions",
        "answer",
    ]
    assert line_diff(None, OLD)[2] == {
        "field": "questions",
        "lines": [{"op": "insert", "text": "ごみはいつ出す"}, {"op": "insert", "text": "ごみの日"}],
    }


def test_only_changed_fields_with_equal_deleted_and_inserted_lines():
    new = dataclasses.replace(
        OLD, answer="朝8時までに。\n指定の集積所に。", questions=("ごみはいつ出す", "ごみの日")
    )
    assert line_diff(OLD, new) == [
        {
            "field": "answer",
            "lines": [
                {"op": "equal", "text": "朝8時までに。"},
                {"op": "delete", "text": "決められた場所に。"},
                {"op": "insert", "text": "指定の集積所に。"},
            ],
        }
    ]
    assert line_diff(OLD, OLD) == []
    cleared = dataclasses.replace(OLD, fees="300円")
    assert line_diff(cleared, OLD) == [
        {"field": "fees", "lines": [{"op": "delete", "text": "300円"}]}
    ]
