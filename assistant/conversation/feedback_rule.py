"""A resident's verdict on an answer: the one place feedback is recorded.

「解決した」 is recorded and thanked for; 「解決しなかった」 is recorded and the conversation
goes to a person, with the answer that did not help among the ticket's candidates. The
Rasa action (``assistant.conversation.actions.feedback``) and the API's degraded mode
(``assistant.conversation.degraded``) both carry out the outcome given here.
"""

from __future__ import annotations

import sqlite_utils

from assistant.conversation.dialogue import THANKS_FOR_FEEDBACK, HandoffRequest, Outcome, Reply
from knowledge.tickets import record_feedback


def feedback_outcome(
    db: sqlite_utils.Database,
    *,
    session_id: str,
    helpful: bool,
    entry_id: str | None,
    last_entry_id: str | None,
    last_revision: int | None,
    text: str = "",
) -> Outcome:
    """Record the verdict on ``entry_id`` (the button's), else on the last answer.

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
    if helpful:
        return Outcome((Reply(THANKS_FOR_FEEDBACK, "feedback", fields={"entry_id": entry_id}),))
    answered = [{"entry_id": entry_id, "revision": revision, "answered": True}]
    return Outcome(
        remember={"failed_turns": 0},
        handoff=HandoffRequest("negative_feedback", answered if entry_id else []),
    )
