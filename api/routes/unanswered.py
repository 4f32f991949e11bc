"""The editors' queue of what residents asked that the knowledge base did not answer
(``knowledge.unanswered``): the questions grouped by the engine's own encoder, each group
with the entry the engine finds nearest, if any.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import require_editor
from api.deps import KnowledgeDb, KnowledgeEngine
from api.schemas import CandidateBrief, UnansweredGroup, UnansweredItem, UnansweredPublic
from assistant.retrieval.engine import Engine
from knowledge.unanswered import Question, group_questions, unanswered_questions

router = APIRouter(prefix="/api", tags=["editor"], dependencies=[Depends(require_editor)])


def group(engine: Engine, items: list[Question]) -> list[UnansweredGroup]:
    if not items:
        return []
    groups = []
    for questions in group_questions(items, engine.encode([item.text for item in items])):
        representative = questions[0].text
        decision = engine.search(representative, top_k=1)
        best = decision.best
        groups.append(
            UnansweredGroup(
                size=len(questions),
                representative=representative,
                suggestion=CandidateBrief(
                    entry_id=best.entry_id, title=best.title, score=best.score
                )
                if best is not None and decision.kind != "handoff"
                else None,
                items=[UnansweredItem(**asdict(question)) for question in questions],
            )
        )
    return groups


@router.get("/unanswered", response_model=UnansweredPublic)
def unanswered(
    db: KnowledgeDb,
    engine: KnowledgeEngine,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> UnansweredPublic:
    return UnansweredPublic(days=days, groups=group(engine, unanswered_questions(db, days)))
