"""What changed between two revisions of an entry, field by field and line by line, as
the editor's history shows it."""

from __future__ import annotations

import difflib
from typing import Any

from knowledge.model import SCHEMA_FIELDS, Entry


def field_lines(value: Any) -> list[str]:
    """A field's value as lines: a list's items, a text's lines; an empty field has none
    (not one empty line)."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).split("\n")


def line_diff(old: Entry | None, new: Entry) -> list[dict]:
    """Per changed field (in schema order), its lines: ``equal``, ``delete`` (only in
    ``old``), ``insert`` (only in ``new``); a first revision (``old`` None) is all
    inserts."""
    before = old.content() if old else {}
    after = new.content()
    changes = []
    for field in SCHEMA_FIELDS:
        a, b = field_lines(before.get(field)), field_lines(after.get(field))
        if a == b:
            continue
        lines = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
            if op == "equal":
                lines += [{"op": "equal", "text": t} for t in a[i1:i2]]
                continue
            lines += [{"op": "delete", "text": t} for t in a[i1:i2]]
            lines += [{"op": "insert", "text": t} for t in b[j1:j2]]
        changes.append({"field": field, "lines": lines})
    return changes
