"""Handing a conversation to a person: the one place a handoff ticket is opened.

The Rasa actions (``actions.runtime.hand_off``), the degraded chat (``degraded``) and
the API's apology for a failed action (``api.routes.chat``) all hand off here, each with
the transcript it has; what the resident is told comes from
``assistant.conversation.dialogue``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlite_utils

from assistant.conversation.dialogue import (
    HandoffRequest,
    Reply,
    handoff_limited_reply,
    handoff_reply,
)
from knowledge.city import CityProfile
from knowledge.tickets import open_ticket
from knowledge.waiting import expected_wait

MAX_PAGE_CHARS = 500


def hand_off(
    db: sqlite_utils.Database,
    city: CityProfile,
    now: dt.datetime,
    request: HandoffRequest,
    *,
    session_id: str,
    transcript: list[dict[str, Any]],
    allowed: bool = True,
    channel: str = "web",
    page: str = "",
) -> Reply:
    """Open (or add to) the session's ticket and tell the resident when a person answers.

    ``transcript`` is the conversation so far; the ticket gets it with this reply added.
    Without ``allowed`` (the resident's address opened too many tickets lately,
    ``MADOGUCHI_HANDOFF_RATE_PER_CLIENT``) no ticket is opened and the reply says to
    wait or phone."""
    fields: dict[str, Any] = {"reason": request.reason}
    if not allowed:
        return Reply(handoff_limited_reply(city), "handoff_refused", fields=fields)
    text = handoff_reply(city, now, expected_wait(db, city, now), request.reason)
    ticket = open_ticket(
        db,
        session_id=session_id,
        reason=request.reason,
        transcript=[*transcript, {"role": "assistant", "text": text, "at": now.timestamp()}],
        candidates=list(request.candidates),
        channel=channel,
        page=page[:MAX_PAGE_CHARS],
    )
    return Reply(text, "handoff", fields={"handoff_id": ticket.id, **fields})
