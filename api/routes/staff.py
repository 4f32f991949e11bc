"""Staff answer lookup (the same engine call the chat makes, with the entry's full
text and staff-only details) and the month's changes."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import require_staff
from api.deps import City, KnowledgeDb, KnowledgeEngine
from api.errors import query_problem
from api.schemas import (
    MAX_MESSAGE_CHARS,
    AnswerPublic,
    AnswersPublic,
    ChangePublic,
    ChangesPublic,
)
from knowledge.store import all_revisions

router = APIRouter(prefix="/api", tags=["staff"], dependencies=[Depends(require_staff)])
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$", re.ASCII)


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
        # The same 422 (and code) as an empty q: FastAPI's check counts spaces as text.
        raise query_problem("q", "string_too_short", "q must not be blank", min_length=1)
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
                category=entry.category,
                documents=list(entry.documents),
                fees=entry.fees,
                staff_notes=entry.staff_notes,
                source_url=entry.source_url,
                valid_from=entry.valid_from.isoformat() if entry.valid_from else None,
                valid_until=entry.valid_until.isoformat() if entry.valid_until else None,
            )
        )
    return AnswersPublic(
        decision=decision.kind,
        confidence=decision.confidence,
        knowledge_revision=decision.knowledge_revision,
        results=results,
    )


def imported_revisions(db) -> set[tuple[str, int]]:
    """Revisions a bulk import made (``madoguchi import``, the starter entries): not
    changes staff need to read one by one."""
    rows = db.execute("SELECT entry_id, revision FROM audit WHERE action = 'import'").fetchall()
    return {(entry_id, revision) for entry_id, revision in rows}


@router.get("/changes", response_model=ChangesPublic)
def changes(
    db: KnowledgeDb,
    city: City,
    month: Annotated[str | None, Query(description="YYYY-MM; default this month")] = None,
) -> ChangesPublic:
    """Revisions published in the month, and revisions taking effect in it (upcoming ones
    after today), newest first. Days are the city hall's (its profile's time zone)."""
    today = city.today()
    if month is None:
        month = today.strftime("%Y-%m")
    elif not MONTH.fullmatch(month):
        raise query_problem("month", "string_pattern_mismatch", "month must be YYYY-MM")
    revisions = all_revisions(db)
    imported = imported_revisions(db)
    found: list[ChangePublic] = []
    for entry_revisions in revisions.values():
        for entry in entry_revisions:
            if entry.status not in ("published", "archived"):
                continue
            dates = []
            if entry.published_at:
                published = dt.datetime.fromisoformat(entry.published_at)
                local = published.astimezone(city.tz).date()
                dates.append(("published", local))
            if entry.valid_from:
                dates.append(("takes_effect", entry.valid_from))
            for kind, day in dates:
                if day.strftime("%Y-%m") == month:
                    found.append(
                        ChangePublic(
                            entry_id=entry.id,
                            revision=entry.revision,
                            title=entry.title,
                            department=entry.department,
                            category=entry.category,
                            kind=kind,
                            date=day.isoformat(),
                            upcoming=day > today,
                            imported=(entry.id, entry.revision) in imported,
                        )
                    )
    found.sort(key=lambda c: (c.date, c.entry_id, c.revision, c.kind), reverse=True)
    return ChangesPublic(month=month, today=today.isoformat(), changes=found)
