"""Staff answer lookup: the same engine call the chat makes, with the entry's full text."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import City, KnowledgeEngine
from api.schemas import MAX_MESSAGE_CHARS, AnswerPublic, AnswersPublic

router = APIRouter(prefix="/api", tags=["staff"])


@router.get("/answers", response_model=AnswersPublic)
def lookup_answers(
    engine: KnowledgeEngine,
    city: City,
    q: Annotated[
        str, Query(min_length=1, max_length=MAX_MESSAGE_CHARS, description="質問またはキーワード")
    ],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
    as_of: Annotated[
        dt.date | None, Query(description="この日付に有効な回答で検索 (YYYY-MM-DD)")
    ] = None,
) -> AnswersPublic:
    if not q.strip():
        raise HTTPException(422, detail=[{"loc": ["query", "q"], "msg": "q must not be blank"}])
    decision = engine.search(q, as_of=as_of, top_k=k)
    results = []
    for candidate in decision.candidates:
        entry = engine.entry(candidate.entry_id, candidate.revision)
        results.append(
            AnswerPublic(
                entry_id=entry.id,
                revision=entry.revision,
                title=entry.title,
                answer=entry.answer,
                score=candidate.score,
                department=entry.department,
                contact=city.contact_for(entry.department, entry.contact),
            )
        )
    return AnswersPublic(
        decision=decision.kind,
        confidence=decision.confidence,
        knowledge_revision=decision.knowledge_revision,
        results=results,
    )
