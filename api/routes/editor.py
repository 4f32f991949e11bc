"""Editors: entries, their revisions, review and publishing, archive, rollback, history,
and the preview of how questions would be answered with a draft."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.auth import EditorUser, require_editor
from api.deps import AppSettings, City, KnowledgeDb, KnowledgeEngine
from api.schemas import (
    SQLITE_INT_MAX,
    ArchiveRequest,
    AuditEventPublic,
    CandidateBrief,
    EntriesPublic,
    EntryCreate,
    EntryHistoryPublic,
    OutcomePublic,
    PreviewPublic,
    PreviewRequest,
    PreviewResult,
    RevisionPublic,
    RollbackRequest,
)
from assistant.retrieval.engine import Decision, Engine
from knowledge import workflow
from knowledge.actors import actor_names
from knowledge.line_diff import line_diff
from knowledge.model import Entry, EntryNotFound, entry_from_mapping
from knowledge.store import all_revisions, audit_log, current_of, revisions_of

Revision = Annotated[int, Path(ge=1, le=SQLITE_INT_MAX)]
router = APIRouter(prefix="/api/entries", tags=["editor"], dependencies=[Depends(require_editor)])
NEW_ENTRY = "new-entry-preview"  # stands for a new entry's draft that has no id yet
preview_router = APIRouter(prefix="/api", tags=["editor"], dependencies=[Depends(require_editor)])


def public_revision(entry: Entry, **extra) -> RevisionPublic:
    content = entry.content()
    content["entry_id"] = content.pop("id")
    return RevisionPublic(
        **content,
        revision=entry.revision,
        status=entry.status,
        author=entry.author,
        created_at=entry.created_at,
        reviewer=entry.reviewer,
        published_at=entry.published_at,
        **extra,
    )


def next_effective(revisions: list[Entry], today: dt.date) -> str | None:
    """The earliest 施行日 after ``today`` of a published revision (YYYY-MM-DD), if any."""
    due = [r.valid_from for r in revisions if r.status == "published" and r.valid_from]
    later = sorted(day for day in due if day > today)
    return later[0].isoformat() if later else None


@router.get("", response_model=EntriesPublic)
def list_entries(
    db: KnowledgeDb,
    city: City,
    status: str | None = None,
    category: str | None = None,
    department: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    as_of: dt.date | None = None,
    upcoming: Annotated[
        bool, Query(description="only entries with a published revision taking effect later")
    ] = False,
) -> EntriesPublic:
    """One revision per entry: the one in force on ``as_of`` (default the city's today),
    else the latest; ``latest_revision``/``latest_status`` tell of a newer draft or
    review. ``today`` is the city's today, whatever ``as_of`` asked."""

    city_today = city.today()
    today = as_of or city_today
    revisions = all_revisions(db)
    entries = current_of(revisions, today)
    if status:
        entries = [e for e in entries if e.status == status]
    if category:
        entries = [e for e in entries if e.category == category]
    if department:
        entries = [e for e in entries if e.department == department]
    if q:
        entries = [e for e in entries if q in e.title or any(q in x for x in e.questions)]
    if upcoming:
        entries = [e for e in entries if next_effective(revisions[e.id], today)]
    data = [
        public_revision(
            e,
            latest_revision=revisions[e.id][-1].revision,
            latest_status=revisions[e.id][-1].status,
            upcoming_from=next_effective(revisions[e.id], today),
        )
        for e in entries
    ]
    return EntriesPublic(data=data, count=len(data), today=city_today.isoformat())


@router.post("", response_model=RevisionPublic, status_code=201)
def save_draft(
    body: EntryCreate,
    db: KnowledgeDb,
    editor: EditorUser,
    new: Annotated[bool, Query(description="refuse (422 on id) if the entry exists")] = False,
) -> RevisionPublic:
    """Save an entry's content as a new draft revision (a new entry if the id is new)."""
    return public_revision(workflow.save_draft(db, body.model_dump(), actor=editor.name, new=new))


@router.get("/{entry_id}/history", response_model=EntryHistoryPublic)
def history(entry_id: str, db: KnowledgeDb, city: City) -> EntryHistoryPublic:
    """Every revision, oldest first, each with its changes from the one before; ``today``
    (the city's) tells which is in force and which upcoming."""
    revisions = revisions_of(db, entry_id)
    if not revisions:
        raise EntryNotFound(entry_id)
    events = audit_log(db, entry_id)
    previous = [None, *revisions[:-1]]
    return EntryHistoryPublic(
        entry_id=entry_id,
        revisions=[
            public_revision(r, diff=line_diff(before, r))
            for before, r in zip(previous, revisions, strict=True)
        ],
        audit=[AuditEventPublic(**event) for event in events],
        today=city.today().isoformat(),
        names=actor_names(
            db,
            [r.author for r in revisions]
            + [r.reviewer for r in revisions]
            + [event["actor"] for event in events],
        ),
    )


@router.post("/{entry_id}/revisions/{revision}/submit", response_model=RevisionPublic)
def submit(entry_id: str, revision: Revision, db: KnowledgeDb, editor: EditorUser):
    return public_revision(workflow.submit_for_review(db, entry_id, revision, actor=editor.name))


@router.post("/{entry_id}/revisions/{revision}/approve", response_model=RevisionPublic)
def approve(
    entry_id: str, revision: Revision, db: KnowledgeDb, editor: EditorUser, settings: AppSettings
):
    """Publish a revision in review; it is answered from its valid_from on."""
    policy = workflow.Policy(separate_approver=settings.separate_approver)
    return public_revision(
        workflow.approve(db, entry_id, revision, actor=editor.name, policy=policy)
    )


@router.post("/{entry_id}/archive", status_code=204)
def archive(entry_id: str, body: ArchiveRequest, db: KnowledgeDb, editor: EditorUser):
    workflow.archive(db, entry_id, actor=editor.name, reason=body.reason)


@router.post("/{entry_id}/rollback", response_model=RevisionPublic)
def rollback(entry_id: str, body: RollbackRequest, db: KnowledgeDb, editor: EditorUser):
    return public_revision(workflow.rollback(db, entry_id, body.to_revision, actor=editor.name))


def outcome(engine: Engine, decision: Decision, draft: Entry | None = None) -> OutcomePublic:
    """What the chat does for a decision: the entry and its text when it answers."""
    best = decision.best if decision.kind == "answer" else None
    text = None
    if best is not None:
        preview = draft is not None and best.entry_id == draft.id and best.revision == 0
        text = (
            engine.city.render(draft.answer)
            if preview
            else engine.entry(best.entry_id, best.revision).answer
        )
    return OutcomePublic(
        decision=decision.kind,
        confidence=decision.confidence,
        entry_id=best.entry_id if best else None,
        revision=best.revision if best else None,
        title=best.title if best else None,
        text=text,
        candidates=[
            CandidateBrief(entry_id=c.entry_id, title=c.title, score=c.score)
            for c in decision.candidates[:3]
        ],
    )


@preview_router.post("/preview", response_model=PreviewPublic)
def preview(body: PreviewRequest, engine: KnowledgeEngine) -> PreviewPublic:
    """How the chat would answer these questions now, and with this draft published
    (the draft is not saved; revision 0 in the results stands for it)."""
    as_of = body.as_of or engine.city.today()
    draft = None
    if body.draft is not None:
        content = body.draft.model_dump()
        content["id"] = content["id"] or NEW_ENTRY
        draft = entry_from_mapping(content)
    now, with_draft = engine.preview(body.questions, draft, as_of=as_of)
    return PreviewPublic(
        as_of=as_of.isoformat(),
        results=[
            PreviewResult(
                question=question,
                now=outcome(engine, before),
                with_draft=outcome(engine, after, draft) if after is not None else None,
            )
            for question, before, after in zip(body.questions, now, with_draft, strict=True)
        ],
    )
