"""Suggested phrasings: the words residents used for a question an entry answered.

A handoff that staff resolve with the entry that answered it, and a resident who picked an
entry from the offered choices and said 「解決した」, each suggest the resident's question
as a phrasing of that entry (staff evidence weighs more than a resident's). A resident's
「解決しなかった」 on an answer counts against that question for that entry. Editors accept
wordings into a new draft revision (which goes through review and publishing as every
change does) or reject them; a rejected wording is remembered and never suggested again.

Every wording is stored masked (knowledge.privacy) and compared by its
``question_key``: the same words with other spaces, widths or punctuation are one wording.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from knowledge.errors import KnowledgeError
from knowledge.model import (
    Entry,
    EntryNotFound,
    checked_text,
    entry_from_mapping,
    question_key,
)
from knowledge.privacy import mask_personal_data
from knowledge.store import latest_revision, now_iso, record_audit, write_transaction
from knowledge.tickets import text_digest
from knowledge.workflow import add_revision, check_phrasings

MAX_SUGGESTION_CHARS = 200
MAX_REASON_CHARS = 500
SOURCES = ("staff", "resident")
STATUSES = ("open", "accepted", "rejected")


class InvalidSuggestion(KnowledgeError):
    """A wording (``field`` "text") or a rejection reason (``field`` "reason") that
    cannot be stored: empty, too long, control characters, HTML."""


class UnknownEntry(KnowledgeError):
    """Suggestions are for entries residents have been answered with: published once."""

    code = "suggestion.unknown_entry"

    def __init__(self, entry_id: str):
        super().__init__(
            f"entry {entry_id!r} does not exist or was never published", entry_id=entry_id
        )


class SuggestionNotFound(KnowledgeError):
    code = "suggestion.not_found"

    def __init__(self, suggestion_id: int, entry_id: str | None = None):
        where = f" for entry {entry_id!r}" if entry_id else ""
        super().__init__(
            f"no suggestion with id {suggestion_id}{where}",
            suggestion_id=suggestion_id,
            entry_id=entry_id,
        )


class SuggestionDecided(KnowledgeError):
    """An editor (perhaps another) already accepted or rejected it."""

    code = "suggestion.decided"

    def __init__(self, suggestion_id: int, status: str):
        super().__init__(
            f"suggestion {suggestion_id} is already {status}",
            suggestion_id=suggestion_id,
            status=status,
        )


# The two ways a wording can conflict with another entry (assistant.retrieval.learning finds them).
SAME_AS_PHRASING = "suggestion.same_as_phrasing"
CHANGES_ANSWER = "suggestion.changes_answer"


class SuggestionConflict(KnowledgeError):
    """Accepting the wording would take another entry's phrasing (``SAME_AS_PHRASING``)
    or change which entry answers one (``CHANGES_ANSWER``): an editor must see it first.
    Params: ``wording``, the other ``entry_id`` and its ``question``."""

    def __init__(self, code: str, *, wording: str, entry_id: str, question: str):
        why = {
            SAME_AS_PHRASING: "is the same as the phrasing",
            CHANGES_ANSWER: "would change the answer to the phrasing",
        }[code]
        super().__init__(
            f"the wording 「{wording}」 {why} 「{question}」 of entry {entry_id!r}",
            code=code,
            wording=wording,
            entry_id=entry_id,
            question=question,
        )


class SuggestionError(KnowledgeError):
    """A request about suggestions that makes no sense (nothing chosen, unknown status)."""


@dataclass(frozen=True)
class Wording:
    """One wording of a question (all suggestions with the same key), with its evidence."""

    id: int  # the suggestion whose text is shown
    ids: tuple[int, ...]  # every suggestion for it (not those against)
    key: str
    text: str
    sources: dict[str, int]  # {"staff": n, "resident": n}
    against: int
    first_at: str
    last_at: str
    tickets: tuple[int, ...]
    revision: int | None = None  # accepted: the draft revision it went into


@dataclass(frozen=True)
class SuggestionGroup:
    entry_id: str
    title: str
    wordings: tuple[Wording, ...]


def clean_text(text: Any, field: str = "text", limit: int = MAX_SUGGESTION_CHARS) -> str:
    """``text`` as a suggestion stores it: one line, checked, personal data masked."""
    name = {"text": "the wording", "reason": "the reason"}[field]
    text = checked_text(
        text, error=InvalidSuggestion, prefix="suggestion", field=field, name=name,
        limit=limit, one_line=True,
    )  # fmt: skip
    masked = mask_personal_data(text)
    if field == "text" and not question_key(masked):
        # Only punctuation or spaces: no phrasing to match.
        raise InvalidSuggestion(f"{name} must not be empty", code="suggestion.empty", field=field)
    return masked


def _published_once(db: sqlite_utils.Database, entry_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM revisions WHERE entry_id = ? AND status IN ('published', 'archived') "
        "LIMIT 1",
        [entry_id],
    ).fetchone()
    return row is not None


def _rejected_before(db: sqlite_utils.Database, entry_id: str, key: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM suggestions WHERE entry_id = ? AND key = ? AND status = 'rejected' "
        "AND weight > 0 LIMIT 1",
        [entry_id, key],
    ).fetchone()
    return row is not None


def add_suggestion(
    db: sqlite_utils.Database,
    *,
    entry_id: str,
    text: str,
    source: str,
    actor: str,
    ticket_id: int | None = None,
    session_id: str | None = None,
    weight: int = 1,
) -> int | None:
    """Store one piece of evidence (``weight`` +1 for, -1 against) inside a write
    transaction the caller holds (``suggest``, a ticket's resolve). None when the text
    is already one of the entry's phrasings (nothing to learn)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    text = clean_text(text)
    if not isinstance(entry_id, str) or not _published_once(db, entry_id):
        raise UnknownEntry(str(entry_id))
    key = question_key(text)
    latest = latest_revision(db, entry_id)
    if latest is not None and key in {question_key(q) for q in latest.questions}:
        return None
    rejected = _rejected_before(db, entry_id, key)
    stamp = now_iso()
    return (
        db["suggestions"]
        .insert(
            {
                "entry_id": entry_id,
                "text": text,
                "key": key,
                "source": source,
                "weight": weight,
                "ticket_id": ticket_id,
                "session_id": session_id,
                "actor": actor,
                "status": "rejected" if rejected else "open",
                "created_at": stamp,
                "decided_by": "",
                "decided_at": stamp if rejected else "",
                "revision": None,
                "reason": "",
            }
        )
        .last_pk
    )


def suggest(
    db: sqlite_utils.Database,
    *,
    entry_id: str,
    text: str,
    source: str,
    actor: str,
    ticket_id: int | None = None,
    session_id: str | None = None,
) -> int | None:
    """Suggest ``text`` as a phrasing of ``entry_id``; its id, or None when the entry
    already has that phrasing. A wording rejected before for this entry is stored as
    rejected at once: it is never suggested again."""
    with write_transaction(db):
        return add_suggestion(
            db,
            entry_id=entry_id,
            text=text,
            source=source,
            actor=actor,
            ticket_id=ticket_id,
            session_id=session_id,
        )


def count_against(
    db: sqlite_utils.Database, *, entry_id: str, text: str, session_id: str | None
) -> int | None:
    """A resident said 「解決しなかった」 to ``entry_id``'s answer to ``text``."""
    with write_transaction(db):
        return add_suggestion(
            db,
            entry_id=entry_id,
            text=text,
            source="resident",
            actor="resident",
            session_id=session_id,
            weight=-1,
        )


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise SuggestionError(
            f"status must be one of {', '.join(STATUSES)}, not {status!r}",
            code="suggestion.unknown_status",
            status=status,
            allowed=list(STATUSES),
        )


def _wording(rows: list[dict[str, Any]]) -> Wording | None:
    """The rows of one (entry, key, status) as one wording; None with no evidence for."""
    positive = [row for row in rows if row["weight"] > 0]
    if not positive:
        return None
    # The text most rows used, the earliest among equals: the same every time.
    counts = Counter(row["text"] for row in positive)
    shown = min(positive, key=lambda row: (-counts[row["text"]], row["id"]))
    sources = Counter(row["source"] for row in positive)
    revisions = [row["revision"] for row in positive if row["revision"] is not None]
    return Wording(
        id=shown["id"],
        ids=tuple(row["id"] for row in positive),
        key=shown["key"],
        text=shown["text"],
        sources={source: sources.get(source, 0) for source in SOURCES},
        against=sum(1 for row in rows if row["weight"] < 0),
        first_at=min(row["created_at"] for row in positive),
        last_at=max(row["created_at"] for row in positive),
        tickets=tuple(sorted({row["ticket_id"] for row in positive if row["ticket_id"]})),
        revision=max(revisions) if revisions else None,
    )


def _strength(wordings: Iterable[Wording]) -> tuple[int, int, int]:
    """Staff evidence before residents'; evidence against weakens."""
    wordings = list(wordings)
    return (
        -sum(w.sources["staff"] for w in wordings),
        -sum(w.sources["resident"] for w in wordings),
        sum(w.against for w in wordings),
    )


def list_suggestions(
    db: sqlite_utils.Database, status: str = "open", entry_id: str | None = None
) -> list[SuggestionGroup]:
    """The suggestions with ``status`` (of one entry, given ``entry_id``), by entry, each
    entry's wordings grouped by key; the strongest evidence first."""
    _check_status(status)
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    where, params = "status = ?", [status]
    if entry_id is not None:
        where, params = where + " AND entry_id = ?", [status, entry_id]
    rows = db.query(f"SELECT * FROM suggestions WHERE {where} ORDER BY id", params)
    for row in rows:
        grouped.setdefault(row["entry_id"], {}).setdefault(row["key"], []).append(row)
    groups = []
    for entry, by_key in grouped.items():
        wordings = [w for rows in by_key.values() if (w := _wording(rows)) is not None]
        if not wordings:
            continue
        wordings.sort(key=lambda w: (*_strength([w]), w.first_at, w.id))
        latest = latest_revision(db, entry)
        title = latest.title if latest else entry
        groups.append(SuggestionGroup(entry, title, tuple(wordings)))
    groups.sort(key=lambda g: (*_strength(g.wordings), g.entry_id))
    return groups


def _suggestion(db: sqlite_utils.Database, suggestion_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM suggestions WHERE id = ?", [suggestion_id]))
    if not rows or rows[0]["weight"] <= 0:
        raise SuggestionNotFound(suggestion_id)
    return rows[0]


def _decide(
    db: sqlite_utils.Database, row: dict[str, Any], status: str, actor: str, **fields: Any
) -> list[int]:
    """Mark the open suggestions of ``row``'s wording (its entry and key) ``status``: one
    decision covers every resident who used those words. The ids marked."""
    ids = [
        r[0]
        for r in db.execute(
            "SELECT id FROM suggestions WHERE entry_id = ? AND key = ? AND status = 'open'",
            [row["entry_id"], row["key"]],
        ).fetchall()
    ]
    changes = {"status": status, "decided_by": actor, "decided_at": now_iso(), **fields}
    for suggestion_id in ids:
        db["suggestions"].update(suggestion_id, changes)
    return ids


def _chosen(
    db: sqlite_utils.Database, entry_id: str, items: list[tuple[int, str | None]]
) -> list[tuple[dict[str, Any], str]]:
    """The chosen suggestions (each open and for ``entry_id``) with the wording each
    adds: as suggested, or as the editor edited it (checked and masked)."""
    if not items:
        raise SuggestionError(
            "choose at least one suggestion to accept", code="suggestion.nothing_selected"
        )
    chosen = []
    for suggestion_id, text in items:
        row = _suggestion(db, int(suggestion_id))
        if row["entry_id"] != entry_id:
            raise SuggestionNotFound(row["id"], entry_id)
        if row["status"] != "open":
            raise SuggestionDecided(row["id"], row["status"])
        chosen.append((row, row["text"] if text is None else clean_text(text)))
    return chosen


def chosen_texts(
    db: sqlite_utils.Database, entry_id: str, items: list[tuple[int, str | None]]
) -> list[str]:
    """The wordings ``accept`` would add for ``items`` (to check them first)."""
    return [wording for _, wording in _chosen(db, entry_id, items)]


def accept(
    db: sqlite_utils.Database,
    entry_id: str,
    items: list[tuple[int, str | None]],
    *,
    actor: str,
) -> Entry:
    """Add the chosen wordings (each as suggested, or as the editor edited it) to the
    entry's phrasings, as a new draft revision of its latest revision; return that
    draft. Every chosen suggestion must be open and for ``entry_id``. A wording another
    entry already has is refused (``InvalidEntry``, as when an editor types it)."""
    with write_transaction(db):
        latest = latest_revision(db, entry_id)
        if latest is None:
            raise EntryNotFound(entry_id)
        chosen = _chosen(db, entry_id, items)
        questions = list(latest.questions)
        taken = {question_key(q) for q in questions}
        for _, wording in chosen:
            if question_key(wording) not in taken:
                taken.add(question_key(wording))
                questions.append(wording)
        entry = entry_from_mapping(latest.content() | {"questions": questions})
        check_phrasings(db, [entry])
        draft, _ = add_revision(db, entry, actor=actor, action="accept_suggestions", publish=False)
        accepted = []
        for row, _ in chosen:
            accepted += _decide(db, row, "accepted", actor, revision=draft.revision)
        record_audit(
            db,
            actor=actor,
            action="suggestion.accept",
            entry_id=entry_id,
            revision=draft.revision,
            detail={
                "ids": sorted(accepted),
                "wordings": [text_digest(wording) for _, wording in chosen],
            },
        )
    return draft


def reject(db: sqlite_utils.Database, ids: Iterable[int], *, actor: str, reason: str = "") -> int:
    """Reject the wordings of ``ids``: for their entry, never suggested again. The number
    of suggestions rejected (every open one with the same words for the same entry)."""
    ids = [int(i) for i in ids]
    if not ids:
        raise SuggestionError(
            "choose at least one suggestion to reject", code="suggestion.nothing_selected"
        )
    reason = clean_text(reason, "reason", MAX_REASON_CHARS) if reason.strip() else ""
    with write_transaction(db):
        by_entry: dict[str, list[int]] = {}
        for suggestion_id in ids:
            row = _suggestion(db, suggestion_id)
            if row["status"] == "accepted":
                raise SuggestionDecided(suggestion_id, row["status"])
            marked = _decide(db, row, "rejected", actor, reason=reason)
            by_entry.setdefault(row["entry_id"], []).extend(marked)
        for entry_id, marked in by_entry.items():
            record_audit(
                db,
                actor=actor,
                action="suggestion.reject",
                entry_id=entry_id,
                revision=None,
                detail={
                    "ids": sorted(marked),
                    "reason": text_digest(reason) if reason else None,
                },
            )
    return sum(len(marked) for marked in by_entry.values())


def suggestion_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """How many wordings (an entry and a key with evidence for) are in each status."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = db.execute(
        "SELECT status, COUNT(DISTINCT entry_id || char(31) || key) FROM suggestions "
        "WHERE weight > 0 GROUP BY status"
    ).fetchall()
    for status, count in rows:
        counts[status] = count
    return counts


def open_wordings(db: sqlite_utils.Database, entry_id: str) -> list[Wording]:
    """The open wordings of one entry, strongest first (for the conflict check)."""
    for group in list_suggestions(db, "open", entry_id):
        return list(group.wordings)
    return []
