"""Duplicates inside one import file: one entry written twice, or one question twice.

A city's FAQ list is edited by many hands over years: the same question appears twice,
with the same answer, with one answer a part of the other, or with the contact block
moved. Those are one entry (merged). The same question with a different answer may be
two real cases (two offices, two groups of residents): both are imported and the engine
offers both. An id used twice for different content is a clash to settle.
``on_duplicate`` decides: ``warn`` (the default) merges and renames with a warning,
``skip`` keeps only the first of each group, ``error`` refuses the import listing them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from knowledge.model import MAX_QUESTIONS, Entry, question_key

ON_DUPLICATE = ("warn", "skip", "error")

_SENTENCE_END = re.compile(r"[。．！？!?\n]")

_SAME = "the same question and answer"
_DESCRIPTIONS = {
    "same": _SAME,
    "reordered": _SAME + " (its sentences in another order)",
    "first-longer": "the same question, its answer contained in the other's",
    "second-longer": "the same question, its answer containing the other's",
    "different": "the same question with a different answer",
}


@dataclass(frozen=True)
class Candidate:
    """A valid entry of the file, with where it came from (for messages and rejects)."""

    position: int
    where: str
    raw: Any
    entry: Entry


@dataclass
class Resolution:
    kept: list[Candidate]
    warnings: list[str]
    problems: list[str]
    merged: int = 0
    skipped: int = 0


def _sentences(text: str) -> list[str]:
    return sorted(key for part in _SENTENCE_END.split(text) if (key := question_key(part)))


def answer_relation(first: str, second: str) -> str | None:
    """How two answers to one question compare, after NFKC and ignoring case, spaces and
    punctuation: ``same``, ``reordered`` (the same sentences), ``first-longer`` /
    ``second-longer`` (one contains the other's text or all of its sentences), or None."""
    a, b = question_key(first), question_key(second)
    if a == b:
        return "same"
    sa, sb = _sentences(first), _sentences(second)
    if sa == sb:
        return "reordered"
    if b in a or a in b or set(sa) <= set(sb) or set(sb) <= set(sa):
        return "first-longer" if len(a) >= len(b) else "second-longer"
    return None


def _with_questions(kept: Entry, other: Entry) -> Entry:
    """``kept`` with the phrasings of ``other`` it lacks: a merge loses none."""
    keys = {question_key(q) for q in kept.questions}
    extra = []
    for question in other.questions:
        if question_key(question) not in keys:
            keys.add(question_key(question))
            extra.append(question)
    if not extra:
        return kept
    return dataclasses.replace(kept, questions=(kept.questions + tuple(extra))[:MAX_QUESTIONS])


def _free_id(base: str, used: set[str]) -> str:
    """``base-2``, ``base-3``, …: the first not used in the file (stable for the file)."""
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[: 80 - len(suffix)] + suffix
        if candidate not in used:
            return candidate
        number += 1


def _label(candidate: Candidate) -> str:
    return f"entry {candidate.entry.id!r} ({candidate.where})"


def _refusal(later: Candidate, first: Candidate, description: str) -> str:
    if later.entry.id == first.entry.id:
        return (
            f"{later.where}: entry {later.entry.id!r}, field 'id': "
            f"duplicate of {first.where} ({description})"
        )
    return f"{later.where}: entry {later.entry.id!r}: {description} as {_label(first)}"


def resolve(candidates: list[Candidate], on_duplicate: str = "warn") -> Resolution:
    """Merge, keep apart or refuse the duplicates among ``candidates`` (in file order)."""
    if on_duplicate not in ON_DUPLICATE:
        raise ValueError(f"on_duplicate must be one of {ON_DUPLICATE}, not {on_duplicate!r}")
    notes: list[tuple[int, str]] = []
    problems: list[str] = []
    result = Resolution(kept=[], warnings=[], problems=problems)
    kept: list[Candidate] = []
    by_question: dict[str, list[int]] = {}
    apart: dict[int, Candidate] = {}  # position -> the first entry with its question
    for candidate in candidates:
        group = by_question.setdefault(question_key(candidate.entry.title), [])
        match = next(
            (
                (index, relation)
                for index in group
                if (relation := answer_relation(kept[index].entry.answer, candidate.entry.answer))
            ),
            None,
        )
        first = kept[match[0]] if match else kept[group[0]] if group else None
        if first is None:
            group.append(len(kept))
            kept.append(candidate)
            continue
        description = _DESCRIPTIONS[match[1] if match else "different"]
        if on_duplicate == "error":
            problems.append(_refusal(candidate, first, description))
            continue
        if on_duplicate == "skip":
            result.skipped += 1
            notes.append(
                (
                    candidate.position,
                    f"{candidate.where}: entry {candidate.entry.id!r}: {description} as "
                    f"{_label(first)}; skipped, the first is kept",
                )
            )
            continue
        if match is None:
            apart[candidate.position] = first
            group.append(len(kept))
            kept.append(candidate)
            continue
        index, relation = match
        result.merged += 1
        if relation == "second-longer":
            kept[index] = dataclasses.replace(
                candidate, entry=_with_questions(candidate.entry, first.entry)
            )
            outcome = f"merged, keeping this longer answer ({candidate.where})"
        else:
            kept[index] = dataclasses.replace(
                first, entry=_with_questions(first.entry, candidate.entry)
            )
            outcome = (
                "merged into it"
                if relation in ("same", "reordered")
                else f"merged, keeping the longer answer ({first.where})"
            )
        notes.append(
            (
                candidate.position,
                f"{candidate.where}: entry {candidate.entry.id!r}: {description} as "
                f"{_label(first)}; {outcome}",
            )
        )
    result.kept = _settle_ids(kept, apart, on_duplicate, result, notes)
    result.warnings = [text for _, text in sorted(notes, key=lambda note: note[0])]
    return result


def _settle_ids(
    kept: list[Candidate],
    apart: dict[int, Candidate],
    on_duplicate: str,
    result: Resolution,
    notes: list[tuple[int, str]],
) -> list[Candidate]:
    """Each id once: a later entry with a taken id is renamed (warn), dropped (skip) or
    refused (error). Entries kept apart for their different answer get their warning here,
    with the new id if they needed one."""
    used = {candidate.entry.id for candidate in kept}
    owners: dict[str, Candidate] = {}
    settled = []
    for candidate in sorted(kept, key=lambda c: c.position):
        eid = candidate.entry.id
        first = owners.get(eid)
        same_question = apart.get(candidate.position)
        if first is None:
            if same_question:
                notes.append(
                    (
                        candidate.position,
                        f"{candidate.where}: entry {eid!r}: {_DESCRIPTIONS['different']} as "
                        f"{_label(same_question)}; imported as a separate entry",
                    )
                )
            owners[eid] = candidate
            settled.append(candidate)
            continue
        if on_duplicate == "error":
            result.problems.append(_refusal(candidate, first, "different content"))
            continue
        if on_duplicate == "skip":
            result.skipped += 1
            notes.append(
                (
                    candidate.position,
                    f"{candidate.where}: entry {eid!r}: the id of {first.where} with "
                    "different content; skipped, the first is kept",
                )
            )
            continue
        new_id = _free_id(eid, used)
        used.add(new_id)
        why = (
            f"{_DESCRIPTIONS['different']} as {_label(first)}; imported as a separate entry"
            if same_question
            else f"the id of {first.where} with different content"
        )
        notes.append(
            (
                candidate.position,
                f"{candidate.where}: entry {eid!r}: {why}, with the new id {new_id!r}",
            )
        )
        candidate = dataclasses.replace(
            candidate, entry=dataclasses.replace(candidate.entry, id=new_id)
        )
        owners[new_id] = candidate
        settled.append(candidate)
    return settled
