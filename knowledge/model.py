"""The knowledge entry and its validation.

An entry is what a resident or a staff member gets as an answer: a curated text with the
phrasings residents use to ask for it. Validation errors name the entry, the field and
the reason, so an editor can fix a 2,000-line import file from the message alone.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from knowledge.errors import KnowledgeError, Problem
from knowledge.privacy import CARD, MY_NUMBER, find_personal_data

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
# A revision's life: draft -> in_review -> published; archived when the entry is withdrawn.
STATUSES = ("draft", "in_review", "published", "archived")

MAX_TITLE = 200
MAX_QUESTION = 500
MAX_QUESTIONS = 100
MAX_ANSWER = 10_000
MAX_SHORT = 500
MAX_LIST_ITEMS = 50

# Field names in the import/export schema, in export order.
REQUIRED_FIELDS = ("id", "title", "questions", "answer")
OPTIONAL_TEXT_FIELDS = ("category", "department", "contact", "fees", "source_url")
OPTIONAL_LIST_FIELDS = ("documents", "tags")
SCHEMA_FIELDS = (
    "id",
    "title",
    "category",
    "department",
    "contact",
    "questions",
    "answer",
    "documents",
    "fees",
    "tags",
    "staff_notes",
    "source_url",
    "valid_from",
    "valid_until",
)


class InvalidEntry(KnowledgeError):
    """An entry failed validation. ``problems`` lists (entry id, field, reason), each a
    :class:`Problem` with its own code."""

    code = "entry.invalid"

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(
            "; ".join(f"entry {eid!r}, field {fld!r}: {why}" for eid, fld, why in problems)
        )


class EntryNotFound(KnowledgeError):
    code = "entry.not_found"

    def __init__(self, entry_id: str, revision: int | None = None):
        self.entry_id = entry_id
        where = f" revision {revision}" if revision is not None else ""
        super().__init__(
            f"no entry with id {entry_id!r}{where}", entry_id=entry_id, revision=revision
        )


class WorkflowError(KnowledgeError):
    """A workflow step that is not allowed now (wrong status, self-approval, ...)."""


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    category: str = ""
    department: str = ""
    contact: str = ""
    documents: tuple[str, ...] = ()
    fees: str = ""
    tags: tuple[str, ...] = ()
    staff_notes: str = ""
    source_url: str = ""
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    status: str = "draft"
    revision: int = 0
    author: str = field(default="", compare=False)
    created_at: str = field(default="", compare=False)
    reviewer: str = field(default="", compare=False)
    published_at: str = field(default="", compare=False)

    def content(self) -> dict[str, Any]:
        """The editable fields in schema order, as plain JSON-ready values."""
        data = asdict(self)
        return {
            name: (
                list(data[name])
                if isinstance(data[name], tuple)
                else data[name].isoformat()
                if isinstance(data[name], dt.date)
                else data[name]
            )
            for name in SCHEMA_FIELDS
        }

    def covers(self, as_of: dt.date) -> bool:
        """True when this is a published revision whose dates include ``as_of``."""
        if self.status != "published":
            return False
        if self.valid_from and as_of < self.valid_from:
            return False
        return not (self.valid_until and as_of > self.valid_until)


def revision_in_force(revisions: Iterable[Entry], as_of: dt.date) -> Entry | None:
    """The revision of one entry that is answered on ``as_of``, if any.

    Among published revisions whose dates include the day, the one that took effect
    last wins, then the newest. So next year's rates published now with
    ``valid_from: 2027-04-01`` take over from today's on that day, by themselves.
    """
    covering = [r for r in revisions if r.covers(as_of)]
    if not covering:
        return None
    return max(covering, key=lambda r: (r.valid_from or dt.date.min, r.revision))


# Characters that change how text shows without being seen: bidirectional overrides
# and isolates (U+202E turns 「exe.txt」 around), zero-width ones, and C1 controls.
_INVISIBLE = frozenset(
    [chr(c) for c in range(0x80, 0xA0)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u061c", "\u2060", "\ufeff"]
)


def has_control_characters(text: str) -> bool:
    """Control characters other than line breaks and tabs, and invisible formatting
    characters (bidirectional controls, zero-width characters): never wanted in typed
    text, and able to make a text read differently from what it holds."""
    return any(
        (ord(ch) < 32 and ch not in "\n\t") or ch == "\x7f" or ch in _INVISIBLE for ch in text
    )


def has_lone_surrogates(text: str) -> bool:
    """Lone surrogates (``"\\ud800"`` in JSON, undecodable bytes read with
    ``surrogateescape``) are not valid Unicode: SQLite and UTF-8 output refuse them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text_issue(text: str) -> tuple[str, str] | None:
    """(kind, reason) of why ``text`` cannot be stored as entry text (line breaks and
    tabs are fine)."""
    if has_lone_surrogates(text):
        return "lone_surrogate", "is not valid Unicode (it holds a lone surrogate)"
    if has_control_characters(text.replace("\r", "")):
        return (
            "control_characters",
            "must not contain control characters or invisible formatting characters",
        )
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as entry text (line breaks and tabs are fine)."""
    issue = text_issue(text)
    return issue[1] if issue else None


_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!?]")
HTML_PROBLEM = "must not contain HTML tags (such as <script>); use plain text or Markdown"


PERSONAL_NUMBER_PROBLEM = (
    "holds what looks like a My Number or a card number; "
    "entries are public and must not carry a person's numbers"
)


def has_personal_number(text: str) -> bool:
    """A My Number or a card number: never part of an entry. (Phone numbers and e-mail
    addresses are: an entry gives the office's own.)"""
    return any(kind in (MY_NUMBER, CARD) for _, _, kind in find_personal_data(text))


def has_html(text: str) -> bool:
    """An HTML tag (or comment, or declaration): refused in every text field and reply,
    so no page has to trust its escaping alone."""
    return _HTML_TAG.search(text) is not None


def checked_text(
    text: Any,
    *,
    error: type[KnowledgeError],
    prefix: str,
    field: str,
    name: str,
    limit: int,
    one_line: bool = False,
) -> str:
    """Free text a person typed (a staff reply or note, a suggested wording, a reason)
    as it may be stored: checked in one order (empty, control or invisible characters,
    length, HTML), each refusal an ``error`` with the code ``{prefix}.{kind}`` and
    ``field``. ``name`` is what the English text calls it. A ``one_line`` text has its
    whitespace folded into single spaces; another keeps its line breaks (CRLF and CR read
    as LF, as entry text allows them) and loses the spaces around it. Masking personal
    data is the caller's."""
    if not isinstance(text, str) or not text.strip():
        raise error(f"{name} must not be empty", code=f"{prefix}.empty", field=field)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if has_lone_surrogates(text) or has_control_characters(text):
        raise error(
            f"{name} must not contain control characters or invisible formatting characters",
            code=f"{prefix}.control_characters",
            field=field,
        )
    if one_line:
        text = " ".join(text.split())
    if len(text) > limit:
        raise error(
            f"{name} is {len(text)} characters; the limit is {limit}",
            code=f"{prefix}.too_long",
            field=field,
            length=len(text),
            limit=limit,
        )
    if has_html(text):
        raise error(
            f"{name} must not contain HTML tags; write plain text",
            code=f"{prefix}.html",
            field=field,
        )
    return text


def question_key(question: str) -> str:
    """What makes two phrasings the same: width, case, spaces and punctuation ignored."""
    folded = unicodedata.normalize("NFKC", question).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PZS")


def _text(value: Any, problems: list, eid: str, name: str, limit: int, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        kind = type(value).__name__
        problems.append(Problem(eid, name, f"must be text, got {kind}", "text.not_text", got=kind))
        return ""
    value = value.strip()
    if required and not value:
        problems.append(Problem(eid, name, "is required and must not be empty", "text.required"))
    if len(value) > limit:
        problems.append(
            Problem(
                eid,
                name,
                f"is {len(value)} characters long; the limit is {limit}",
                "text.too_long",
                length=len(value),
                limit=limit,
            )
        )
    elif (issue := text_issue(value)) is not None:
        problems.append(Problem(eid, name, issue[1], f"text.{issue[0]}"))
    elif name != "answer" and has_html(value):  # the answer's own check names it
        problems.append(Problem(eid, name, HTML_PROBLEM, "text.html"))
    elif name != "source_url" and has_personal_number(value):  # a page id is no person's
        problems.append(Problem(eid, name, PERSONAL_NUMBER_PROBLEM, "text.personal_number"))
    return value


def _text_list(
    value: Any, problems: list, eid: str, name: str, limit: int, max_items: int, required: bool
) -> tuple[str, ...]:
    if value is None:
        value = []
    if not isinstance(value, list):
        kind = type(value).__name__
        problems.append(
            Problem(eid, name, f"must be a list of text, got {kind}", "list.not_list", got=kind)
        )
        return ()
    if required and not value:
        problems.append(Problem(eid, name, "needs at least one item", "list.required"))
    if len(value) > max_items:
        problems.append(
            Problem(
                eid,
                name,
                f"has {len(value)} items; the limit is {max_items}",
                "list.too_many",
                count=len(value),
                limit=max_items,
            )
        )
    items = []
    for position, item in enumerate(value, start=1):
        at = f"item {position}"
        if not isinstance(item, str) or not item.strip():
            problems.append(
                Problem(eid, name, f"{at} must be non-empty text", "item.empty", item=position)
            )
            continue
        length = len(item.strip())
        if length > limit:
            problems.append(
                Problem(
                    eid,
                    name,
                    f"{at} is {length} characters; limit {limit}",
                    "item.too_long",
                    item=position,
                    length=length,
                    limit=limit,
                )
            )
        elif (issue := text_issue(item)) is not None:
            problems.append(
                Problem(eid, name, f"{at} {issue[1]}", f"item.{issue[0]}", item=position)
            )
        elif has_html(item):
            problems.append(Problem(eid, name, f"{at} {HTML_PROBLEM}", "item.html", item=position))
        elif has_personal_number(item):
            problems.append(
                Problem(
                    eid,
                    name,
                    f"{at} {PERSONAL_NUMBER_PROBLEM}",
                    "item.personal_number",
                    item=position,
                )
            )
        items.append(item.strip())
    return tuple(items)


def _date(value: Any, problems: list, eid: str, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        problems.append(
            Problem(eid, name, "must be a date (YYYY-MM-DD), not a date and time", "date.with_time")
        )
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(
        Problem(
            eid,
            name,
            f"{value!r} is not a date in the form YYYY-MM-DD",
            "date.invalid",
            value=value if isinstance(value, (str, int, float, bool)) else repr(value),
        )
    )
    return None


# City details in answers are written as placeholders that the city profile fills in.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
PLACEHOLDER_NAMES = ("市名", "開庁時間", "閉庁日", "市役所住所", "代表電話")

_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)")
# A reference-style link's definition: ``[1]: javascript:...`` under ``[x][1]``.
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S*?)>?(?:\s|$)", re.MULTILINE)
_SAFE_SCHEMES = ("http://", "https://", "mailto:", "tel:")


def unsafe_markdown(text: str, eid: str = "?", field: str = "answer") -> list[Problem]:
    """Why ``text`` is outside the safe Markdown subset (paragraphs, lists, links)."""
    problems = []
    if has_html(text):
        problems.append(Problem(eid, field, HTML_PROBLEM, "text.html"))
    for name in PLACEHOLDER.findall(text):
        if name not in PLACEHOLDER_NAMES:
            problems.append(
                Problem(
                    eid,
                    field,
                    f"unknown placeholder {{{{{name}}}}}; use one of "
                    + ", ".join(f"{{{{{n}}}}}" for n in PLACEHOLDER_NAMES),
                    "answer.unknown_placeholder",
                    name=name,
                    allowed=list(PLACEHOLDER_NAMES),
                )
            )
    for target in _LINK.findall(text) + _REFERENCE.findall(text):
        if not target.lower().startswith(_SAFE_SCHEMES):
            problems.append(
                Problem(
                    eid,
                    field,
                    f"link target {target!r} must start with http://, https://, mailto: or tel:",
                    "answer.unsafe_link",
                    target=target,
                )
            )
    return problems


def entry_from_mapping(data: Any, *, status: str = "draft", revision: int = 0) -> Entry:
    """Validate one entry in the import schema; raise :class:`InvalidEntry` listing all problems."""
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        why = f"an entry must be an object, got {kind}"
        raise InvalidEntry([Problem("?", "-", why, "entry.not_object", got=kind)])
    raw_id = data.get("id")
    eid = raw_id if isinstance(raw_id, str) and raw_id else "?"
    problems: list[Problem] = []
    # YAML keys need not be text (``1: x``, ``null: y``): name them all the same.
    unknown = sorted(set(data) - set(SCHEMA_FIELDS), key=lambda k: (type(k) is not str, str(k)))
    for name in unknown:
        shown = name if isinstance(name, str) else repr(name)
        problems.append(Problem(eid, shown, "is not a known field", "field.unknown"))
    if not isinstance(raw_id, str) or not ID_PATTERN.match(raw_id):
        problems.append(
            Problem(
                eid,
                "id",
                "must be 1-80 lowercase letters, digits or hyphens, "
                "starting with a letter or digit",
                "id.pattern",
            )
        )
    title = _text(data.get("title"), problems, eid, "title", MAX_TITLE, required=True)
    questions = _text_list(
        data.get("questions"), problems, eid, "questions", MAX_QUESTION, MAX_QUESTIONS, True
    )
    answer = _text(data.get("answer"), problems, eid, "answer", MAX_ANSWER, required=True)
    problems.extend(unsafe_markdown(answer, eid))
    for position, question in enumerate(questions, start=1):
        if "\n" in question:
            problems.append(
                Problem(
                    eid,
                    "questions",
                    f"item {position} must be a single line",
                    "item.multiline",
                    item=position,
                )
            )
    texts = {
        name: _text(data.get(name), problems, eid, name, MAX_SHORT, required=False)
        for name in OPTIONAL_TEXT_FIELDS
    }
    if texts["source_url"] and not texts["source_url"].startswith(("http://", "https://")):
        problems.append(
            Problem(eid, "source_url", "must start with http:// or https://", "source_url.scheme")
        )
    lists = {
        name: _text_list(data.get(name), problems, eid, name, MAX_SHORT, MAX_LIST_ITEMS, False)
        for name in OPTIONAL_LIST_FIELDS
    }
    staff_notes = _text(data.get("staff_notes"), problems, eid, "staff_notes", MAX_ANSWER, False)
    valid_from = _date(data.get("valid_from"), problems, eid, "valid_from")
    valid_until = _date(data.get("valid_until"), problems, eid, "valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        problems.append(
            Problem(
                eid,
                "valid_until",
                f"{valid_until} is before valid_from {valid_from}",
                "date.before_from",
                valid_from=valid_from.isoformat(),
                valid_until=valid_until.isoformat(),
            )
        )
    if problems:
        raise InvalidEntry(problems)
    return Entry(
        id=raw_id,
        title=title,
        questions=questions,
        answer=answer,
        staff_notes=staff_notes,
        valid_from=valid_from,
        valid_until=valid_until,
        status=status,
        revision=revision,
        **texts,
        **lists,
    )
