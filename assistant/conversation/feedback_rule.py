"""A resident's verdict on an answer: the one place feedback is recorded.

「解決した」 is recorded and thanked for; 「解決しなかった」 is recorded and the conversation
goes to a person, with the answer that did not help among the ticket's candidates. The
Rasa action (``assistant.conversation.actions.feedback``) and the API's degraded mode
(``assistant.conversation.degraded``) both carry out the outcome given here.

The verdict also teaches (knowledge.suggestions): 「解決した」 on an entry the resident
picked from the offered choices suggests the question that led to the choices as a
phrasing of it (the engine could not tell; the resident could), and 「解決しなかった」 on
an answer counts against that question for that entry. A direct answer that helped
teaches nothing: the engine already answers those words with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from assistant.conversation.dialogue import (
    CLARIFY_PROMPT,
    THANKS_FOR_FEEDBACK,
    HandoffRequest,
    Outcome,
    Reply,
    typed_choice,
)
from knowledge.inquiries import failed_question
from knowledge.suggestions import InvalidSuggestion, UnknownEntry, count_against, suggest
from knowledge.tickets import record_feedback

CHOICES_OFFERED = 3


def _is_choice(turn: dict[str, Any]) -> bool:
    """A resident's pick among offered choices: a button, or typed (「2番目」)."""
    text = str(turn.get("text") or "").strip()
    if turn.get("role") != "resident":
        return False
    if turn.get("intent") == "choose_entry" or text.startswith("/choose_entry"):
        return True
    return typed_choice(text, CHOICES_OFFERED) is not None


def answered_question(turns: Sequence[dict[str, Any]]) -> tuple[str, bool]:
    """The question the last answer in ``turns`` answered, and whether the resident
    picked that answer from offered choices (then the question is the one that led to
    the choices). ``turns`` are the conversation so far, the feedback itself included."""
    last = max((i for i, t in enumerate(turns) if t.get("role") == "assistant"), default=-1)
    said = list(turns[: last + 1])
    offered = [i for i, t in enumerate(said) if t.get("role") == "assistant"]
    offered = [i for i in offered if str(said[i].get("text")) == CLARIFY_PROMPT]
    if offered:
        after = [t for t in said[offered[-1] + 1 :] if t.get("role") == "resident"]
        if after and all(_is_choice(t) for t in after):
            return failed_question(said[: offered[-1]]), True
    return failed_question(said), False


def learn_from_feedback(
    db: sqlite_utils.Database,
    *,
    session_id: str,
    helpful: bool,
    entry_id: str | None,
    turns: Sequence[dict[str, Any]],
) -> int | None:
    """Suggest, or count against, the question behind the answer ``entry_id`` gave."""
    question, chosen = answered_question(turns)
    if not entry_id or not question or (helpful and not chosen):
        return None
    try:
        if helpful:
            return suggest(
                db,
                entry_id=entry_id,
                text=question,
                source="resident",
                actor="resident",
                session_id=session_id,
            )
        return count_against(db, entry_id=entry_id, text=question, session_id=session_id)
    except (InvalidSuggestion, UnknownEntry):
        # A question no phrasing could be (too long, markup) or a forged button's entry:
        # nothing to learn, and the resident's verdict stands.
        return None


def feedback_outcome(
    db: sqlite_utils.Database,
    *,
    session_id: str,
    helpful: bool,
    entry_id: str | None,
    last_entry_id: str | None,
    last_revision: int | None,
    text: str = "",
    turns: Sequence[dict[str, Any]] = (),
) -> Outcome:
    """Record the verdict on ``entry_id`` (the button's), else on the last answer, and
    learn from it (``learn_from_feedback``) with the conversation's ``turns``.

    The revision is known only for the last answer; ``text`` is what the resident
    typed, and a button click's text (its payload) is not kept."""
    entry_id = entry_id or last_entry_id
    revision = last_revision if entry_id == last_entry_id else None
    revision = int(revision) if revision is not None else None  # a Rasa slot's value is untyped
    record_feedback(
        db,
        session_id=session_id,
        entry_id=entry_id,
        revision=revision,
        helpful=helpful,
        text="" if text.startswith("/") else text,
    )
    learn_from_feedback(db, session_id=session_id, helpful=helpful, entry_id=entry_id, turns=turns)
    if helpful:
        return Outcome((Reply(THANKS_FOR_FEEDBACK, "feedback", fields={"entry_id": entry_id}),))
    answered = [{"entry_id": entry_id, "revision": revision, "answered": True}]
    return Outcome(
        remember={"failed_turns": 0},
        handoff=HandoffRequest("negative_feedback", answered if entry_id else []),
    )
