"""A city's own FAQ records made into the import schema, before validation.

A city exports its FAQ page as it is: its own column names (質問, 回答, 担当課), one
question per entry and no ``questions`` list, no ids, and line breaks written as markers
inside one-line cells (``<br>``, ``＜改＞``, a literal ``\\n``). :func:`prepare` maps each of
those onto the schema of :mod:`knowledge.model`, which then validates as for any file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from knowledge.model import SCHEMA_FIELDS, question_key

# Column names (CSV headings; also JSONL and YAML keys) that a city's export may use,
# compared after NFKC and case folding. "question" is one question (the entry's title
# and its one phrasing); the schema's own ``questions`` is a list.
FIELD_ALIASES = {
    "番号": "id",
    "no": "id",
    "no.": "id",
    "タイトル": "title",
    "件名": "title",
    "question": "question",
    "質問": "question",
    "回答": "answer",
    "答え": "answer",
    "分類": "category",
    "カテゴリ": "category",
    "カテゴリー": "category",
    "担当課": "department",
    "担当部署": "department",
    "問い合わせ先": "contact",
    "お問い合わせ先": "contact",
    "url": "source_url",
} | {name: name for name in SCHEMA_FIELDS}

# Fields whose line-break markers become line breaks; in the others (titles, questions,
# category, department) a marker or a line break becomes a space.
BLOCK_FIELDS = ("answer", "contact", "fees", "staff_notes")
LINE_FIELDS = ("title", "category", "department")

_MARKUP_BREAK = re.compile(r"[ \t]*(?:<\s*br\s*/?\s*>|[<＜]改[>＞])[ \t]*", re.IGNORECASE)
# A backslash and n in a text with no real line break is an escaped break (a cell
# exported by a tool that escapes them); in multi-line text it may be meant (C:\new).
_ESCAPED_BREAK = re.compile(r"[ \t]*\\r\\n|[ \t]*\\n[ \t]*")
_LINE_BREAK = re.compile(r"[ \t]*(?:\r\n|\r|\n)[ \t]*")

ID_PREFIX = "faq-"


def canonical_field(name: Any) -> Any:
    """The schema field a column name or key stands for; an unknown name unchanged."""
    if not isinstance(name, str):
        return name
    return FIELD_ALIASES.get(unicodedata.normalize("NFKC", name).strip().casefold(), name)


def block_text(text: str) -> str:
    """CRLF and CR as LF; break markers as line breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    one_line = "\n" not in text
    text = _MARKUP_BREAK.sub("\n", text)
    return _ESCAPED_BREAK.sub("\n", text) if one_line else text


def line_text(text: str, *, breaks: bool = False) -> str:
    """Break markers (and with ``breaks`` line breaks too) as one space: a title is one
    line. A question's real line break is left for validation to name."""
    text = _ESCAPED_BREAK.sub(" ", _MARKUP_BREAK.sub(" ", text))
    if breaks:
        text = _LINE_BREAK.sub(" ", text)
    return text.strip()


def derived_id(question: str) -> str:
    """An id for an entry the file gives none, from its normalized question.

    Not the row number: a row inserted or removed in the city's list would shift every
    later id, and a re-import would overwrite entries with their neighbours' answers.
    The question's digest stays the same across re-imports and reorderings; an entry
    whose question is reworded arrives as a new entry (archive the old one).
    """
    return ID_PREFIX + hashlib.sha256(question_key(question).encode("utf-8")).hexdigest()[:10]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def rename_fields(record: Mapping) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
    """Keys mapped onto schema fields; two keys for the same field are a problem
    (field, why)."""
    renamed: dict[Any, Any] = {}
    given: dict[Any, Any] = {}
    problems = []
    for key, value in record.items():
        name = canonical_field(key)
        slot = "questions" if name == "question" else name
        if slot in given:
            problems.append((str(key), f"gives the same field as {given[slot]!r}"))
            continue
        given[slot] = key
        renamed[slot] = [value] if name == "question" and isinstance(value, str) else value
    return renamed, problems


def prepare(record: Any) -> tuple[Any, list[tuple[str, str, str]]]:
    """The record in the import schema, ready for :func:`knowledge.model.entry_from_mapping`.

    A record that is not a mapping is returned as it is, for validation to name.
    """
    if not isinstance(record, Mapping):
        return record, []
    data, renamed = rename_fields(record)
    for name in BLOCK_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = block_text(data[name])
    for name in LINE_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = line_text(data[name], breaks=True)
    if isinstance(data.get("questions"), list):
        data["questions"] = [line_text(q) if isinstance(q, str) else q for q in data["questions"]]
    # One question per entry in a city's list: the title is the question, and back.
    # (Only where the field is absent: a title or list given empty is an error to name.)
    if data.get("title") is None and isinstance(data.get("questions"), list) and data["questions"]:
        first = data["questions"][0]
        data["title"] = first if isinstance(first, str) else None
    if data.get("questions") is None and isinstance(data.get("title"), str) and data["title"]:
        data["questions"] = [data["title"]]
    if isinstance(data.get("id"), int) and not isinstance(data["id"], bool):
        data["id"] = str(data["id"])
    if _blank(data.get("id")) and isinstance(data.get("title"), str) and data["title"]:
        data["id"] = derived_id(data["title"])
    eid = data["id"] if isinstance(data.get("id"), str) and data["id"] else "?"
    return data, [(eid, name, why) for name, why in renamed]
