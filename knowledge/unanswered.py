"""What residents asked that the knowledge base did not answer, grouped by similarity.

Every handoff is such a question: 「どれにも当てはまらない」, an answer that did not
help (negative feedback), two messages the assistant could not place, a request for a
person. The question is the resident's last real inquiry before the handoff, chosen when
the ticket was opened (``knowledge.inquiries``). Questions are grouped greedily, oldest
first, by the cosine similarity of their embeddings (the caller's encoder: the engine's)
to each group's first question; the biggest group comes first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from knowledge.tickets import list_tickets

SIMILAR = 0.8  # cosine similarity at which two questions count as the same question
# Handoff reasons the queue names; any other reason is a "handoff".
KINDS = frozenset({"none_of_these", "negative_feedback", "two_failed_turns"})


@dataclass(frozen=True)
class Question:
    kind: str
    text: str
    at: str
    ticket_id: int | None
    # The entry whose answer did not help (negative feedback only).
    entry_id: str | None


def unanswered_questions(db: sqlite_utils.Database, days: int) -> list[Question]:
    """The failed questions of the tickets opened in the last ``days``, oldest first."""
    since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).isoformat()
    items = []
    for ticket in list_tickets(db):
        if ticket.created_at < since:
            continue
        text = ticket.question
        if not text:
            continue
        answered = ticket.candidates[0].get("entry_id") if ticket.candidates else None
        items.append(
            Question(
                kind=ticket.reason if ticket.reason in KINDS else "handoff",
                text=text,
                at=ticket.created_at,
                ticket_id=ticket.id,
                entry_id=answered if ticket.reason == "negative_feedback" else None,
            )
        )
    items.sort(key=lambda item: (item.at, item.ticket_id or 0))
    return items


def group_questions(
    items: Sequence[Question], vectors: np.ndarray, similar: float = SIMILAR
) -> list[list[Question]]:
    """``items`` (oldest first) in groups, given their unit ``vectors`` (one row each):
    each joins the group whose first question is most similar, if at least ``similar``,
    or starts one. The biggest group first; among equals, the one asked first."""
    heads: list[int] = []  # index of each group's first item
    members: list[list[int]] = []
    for i in range(len(items)):
        if heads:
            similarity = vectors[heads] @ vectors[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= similar:
                members[best].append(i)
                continue
        heads.append(i)
        members.append([i])
    groups = [[items[i] for i in indexes] for indexes in members]
    groups.sort(key=lambda group: (-len(group), group[0].at))
    return groups
