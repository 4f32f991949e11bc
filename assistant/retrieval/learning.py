"""Whether accepting a suggested wording would upset another entry (issue 19).

A wording is a conflict when (a) it is already another entry's phrasing (the rule
``knowledge.workflow.phrasing_problems`` that every save applies), or (b) with it added
to its entry, the engine's preview (``Engine.preview``, what an editor's preview runs)
answers some other entry's phrasing differently: the other entry no longer answers its
own phrasing, or this entry now does. The phrasings checked are those of the entries the
engine ranks at the top for the wording itself: those are the ones it could take over.

Editors see conflicts in the suggestions queue; accepting one needs an explicit force.
"""

from __future__ import annotations

import dataclasses
import weakref

import sqlite_utils

from assistant.retrieval.engine import Decision, Engine
from knowledge.model import Entry, EntryNotFound
from knowledge.store import knowledge_revision, latest_revision
from knowledge.suggestions import (
    CHANGES_ANSWER,
    SAME_AS_PHRASING,
    SuggestionConflict,
    SuggestionGroup,
)
from knowledge.workflow import live_others, phrasing_problems

# The entries whose phrasings a wording could take over: those it ranks as the choices.
TOP_CANDIDATES = 3


def _answering(decision: Decision) -> str | None:
    return decision.candidates[0].entry_id if decision.kind == "answer" else None


def conflict_of(
    db: sqlite_utils.Database,
    engine: Engine,
    entry_id: str,
    wording: str,
    *,
    preview: bool = True,
) -> SuggestionConflict | None:
    """The first conflict of adding ``wording`` (as stored: masked) to ``entry_id``'s
    phrasings, or None. Without ``preview`` only (a) is checked: a database lookup, where
    (b) runs the engine (~0.06 s a wording)."""
    latest = latest_revision(db, entry_id)
    if latest is None:
        raise EntryNotFound(entry_id)
    alone = dataclasses.replace(latest, questions=(wording,))
    for problem in phrasing_problems([alone], live_others(db, {entry_id})):
        return SuggestionConflict(
            SAME_AS_PHRASING,
            wording=wording,
            entry_id=problem.params["other_entry"],
            question=problem.params["other_question"],
        )
    if not preview:
        return None
    draft = dataclasses.replace(latest, questions=(*latest.questions, wording))
    taken = _changed_answer(engine, knowledge_revision(db), draft, wording)
    if taken is None:
        return None
    return SuggestionConflict(CHANGES_ANSWER, wording=wording, entry_id=taken[0], question=taken[1])


# What the preview found, per engine, for (knowledge revision, draft, wording): the same
# question gets the same answer until something is published or the entry changes, and a
# queue of open wordings is listed again after every accept (each preview ~0.06 s).
_PREVIEWED: weakref.WeakKeyDictionary[Engine, dict] = weakref.WeakKeyDictionary()
_PREVIEWS_KEPT = 4096


def _changed_answer(
    engine: Engine, knowledge: int, draft: Entry, wording: str
) -> tuple[str, str] | None:
    """(other entry, its phrasing) whose answer ``draft`` published would change."""
    today = engine.city.today()
    key = (knowledge, today, draft, wording)
    kept = _PREVIEWED.setdefault(engine, {})
    if key in kept:
        return kept[key]
    ranked = engine.search(wording, as_of=today).candidates[:TOP_CANDIDATES]
    others = [c for c in ranked if c.entry_id != draft.id]
    asked = [
        (c.entry_id, q) for c in others for q in engine.entry(c.entry_id, c.revision).questions
    ]
    found = None
    if asked:
        now, after = engine.preview([q for _, q in asked], draft, as_of=today)
        for (other, question), before, later in zip(asked, now, after, strict=True):
            was, becomes = _answering(before), _answering(later)
            if was != becomes and (was == other or becomes == draft.id):
                found = (other, question)
                break
    if len(kept) >= _PREVIEWS_KEPT:
        kept.clear()
    kept[key] = found
    return found


def conflicts(
    db: sqlite_utils.Database, engine: Engine, group: SuggestionGroup, *, preview: bool = True
) -> dict[int, SuggestionConflict | None]:
    """Each wording's conflict (by its shown suggestion's id), or None."""
    return {
        w.id: conflict_of(db, engine, group.entry_id, w.text, preview=preview)
        for w in group.wordings
    }
