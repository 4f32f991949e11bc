"""Editors: the suggestions queue (``knowledge.suggestions``). Wordings residents used
for questions an entry answered, by entry, with their evidence and any conflict
(``assistant.retrieval.learning``); accept them into a new draft revision (reviewed and published
as every change is), or reject them for good.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from api.auth import EditorUser, require_editor
from api.deps import KnowledgeDb, KnowledgeEngine
from api.routes.editor import public_revision
from api.schemas import (
    RevisionPublic,
    SuggestionConflictPublic,
    SuggestionCounts,
    SuggestionGroupPublic,
    SuggestionsAccept,
    SuggestionsPublic,
    SuggestionsReject,
    SuggestionsRejected,
    SuggestionWording,
)
from assistant.retrieval.learning import conflict_of, conflicts
from knowledge import suggestions
from knowledge.suggestions import SuggestionConflict

router = APIRouter(
    prefix="/api/suggestions", tags=["editor"], dependencies=[Depends(require_editor)]
)


def public_conflict(conflict: SuggestionConflict | None) -> SuggestionConflictPublic | None:
    if conflict is None:
        return None
    return SuggestionConflictPublic(
        code=conflict.code,
        message=conflict.message,
        entry_id=conflict.params["entry_id"],
        question=conflict.params["question"],
    )


@router.get("", response_model=SuggestionsPublic)
def list_suggestions(
    db: KnowledgeDb,
    engine: KnowledgeEngine,
    status: Annotated[Literal["open", "accepted", "rejected"], Query()] = "open",
    entry_id: Annotated[
        str | None, Query(min_length=1, max_length=80, description="Only this entry's.")
    ] = None,
    preview: Annotated[
        bool,
        Query(
            description="Also preview whether accepting each open wording changes another "
            "entry's answer (~0.06 s a wording). Without it only a wording that is already "
            "another entry's phrasing is a conflict, and `conflict_checked` is false."
        ),
    ] = True,
) -> SuggestionsPublic:
    """By entry, strongest evidence first (staff before residents); open wordings with
    their conflict, if any. A long queue is listed fast with ``preview=false``, then
    checked entry by entry (``entry_id``), as the editor console does."""
    data = []
    for group in suggestions.list_suggestions(db, status, entry_id):
        found = conflicts(db, engine, group, preview=preview) if status == "open" else {}
        wordings = [
            SuggestionWording(
                id=w.id,
                ids=list(w.ids),
                text=w.text,
                sources=w.sources,
                against=w.against,
                first_at=w.first_at,
                last_at=w.last_at,
                tickets=list(w.tickets),
                revision=w.revision,
                conflict=public_conflict(found.get(w.id)),
                conflict_checked=status == "open" and preview,
            )
            for w in group.wordings
        ]
        data.append(
            SuggestionGroupPublic(entry_id=group.entry_id, title=group.title, wordings=wordings)
        )
    return SuggestionsPublic(
        data=data,
        count=sum(len(group.wordings) for group in data),
        counts=suggestions.suggestion_counts(db),
    )


@router.get("/counts", response_model=SuggestionCounts)
def counts(db: KnowledgeDb) -> SuggestionCounts:
    """How many wordings are open, accepted and rejected (one query: for the menu)."""
    return SuggestionCounts(**suggestions.suggestion_counts(db))


@router.post("/accept", response_model=RevisionPublic, status_code=201)
def accept(
    body: SuggestionsAccept, db: KnowledgeDb, engine: KnowledgeEngine, user: EditorUser
) -> RevisionPublic:
    """The chosen wordings (as edited) added to a new draft revision of the entry. A
    wording with a conflict is refused (409 with its code) unless ``force``."""
    items = [(item.id, item.text) for item in body.items]
    if not body.force:
        texts = suggestions.chosen_texts(db, body.entry_id, items)
        for text in texts:
            conflict = conflict_of(db, engine, body.entry_id, text)
            if conflict is not None:
                raise conflict
    return public_revision(suggestions.accept(db, body.entry_id, items, actor=user.name))


@router.post("/reject", response_model=SuggestionsRejected)
def reject(body: SuggestionsReject, db: KnowledgeDb, user: EditorUser) -> SuggestionsRejected:
    """Rejected wordings are remembered: never suggested again for that entry."""
    return SuggestionsRejected(
        rejected=suggestions.reject(db, body.ids, actor=user.name, reason=body.reason)
    )
