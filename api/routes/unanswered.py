"""What residents asked that the knowledge base did not answer, grouped by similarity.

Every handoff is such a question: 「どれにも当てはまらない」, an answer that did not
help (negative feedback), two messages the assistant could not place, a request for a
person. The question is the resident's last real inquiry before the handoff, chosen when
the ticket was opened (``knowledge.inquiries``). Questions are grouped greedily, oldest
first, by the cosine similarity of their embeddings (the engine's own encoder) to each
group's first question; the biggest group comes first, and each gets the entry the
engine finds nearest, if any.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.auth import require_editor
from api.deps import KnowledgeDb, KnowledgeEngine
from api.schemas import CandidateBrief, UnansweredGroup, UnansweredItem, UnansweredPublic
from assistant.engine import Engine
from knowledge.tickets import list_tickets

router = APIRouter(prefix="/api", tags=["editor"], dependencies=[Depends(require_editor)])
SIMILAR = 0.8  # cosine similarity at which two questions count as the same question
KINDS = {
    "none_of_these": "none_of_these",
    "negative_feedback": "negative_feedback",
    "two_failed_turns": "two_failed_turns",
}


def unanswered_items(db, days: int) -> list[UnansweredItem]:
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
            UnansweredItem(
                kind=KINDS.get(ticket.reason, "handoff"),
                text=text,
                at=ticket.created_at,
                ticket_id=ticket.id,
                entry_id=answered if ticket.reason == "negative_feedback" else None,
            )
        )
    items.sort(key=lambda item: (item.at, item.ticket_id or 0))
    return items


def group(engine: Engine, items: list[UnansweredItem]) -> list[UnansweredGroup]:
    if not items:
        return []
    vectors = engine.encode([item.text for item in items])
    heads: list[int] = []  # index of each group's first item
    members: list[list[int]] = []
    for i in range(len(items)):
        if heads:
            similarity = vectors[heads] @ vectors[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= SIMILAR:
                members[best].append(i)
                continue
        heads.append(i)
        members.append([i])
    groups = []
    for head, indexes in zip(heads, members, strict=True):
        representative = items[head].text
        decision = engine.search(representative, top_k=1)
        best = decision.best
        groups.append(
            UnansweredGroup(
                size=len(indexes),
                representative=representative,
                suggestion=CandidateBrief(
                    entry_id=best.entry_id, title=best.title, score=best.score
                )
                if best is not None and decision.kind != "handoff"
                else None,
                items=[items[i] for i in indexes],
            )
        )
    groups.sort(key=lambda g: (-g.size, g.items[0].at))
    return groups


@router.get("/unanswered", response_model=UnansweredPublic)
async def unanswered(
    db: KnowledgeDb,
    engine: KnowledgeEngine,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> UnansweredPublic:
    items = await run_in_threadpool(unanswered_items, db, days)
    groups = await run_in_threadpool(group, engine, items)
    return UnansweredPublic(days=days, groups=groups)
