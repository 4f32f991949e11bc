"""Editors: entries, their revisions, review and publishing, archive, rollback, history.

Until accounts and roles exist, access is the stopgap in ``api.auth``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from starlette.concurrency import run_in_threadpool

from api.auth import current_user
from api.deps import AppSettings, KnowledgeDb
from api.schemas import (
    SQLITE_INT_MAX,
    ArchiveRequest,
    AuditEventPublic,
    EntriesPublic,
    EntryCreate,
    EntryHistoryPublic,
    RevisionPublic,
    RollbackRequest,
)
from knowledge import workflow
from knowledge.model import Entry, EntryNotFound, InvalidEntry, WorkflowError
from knowledge.store import audit_log, current_entries, revisions_of

CurrentEditor = Annotated[str, Depends(current_user)]
Revision = Annotated[int, Path(ge=1, le=SQLITE_INT_MAX)]
router = APIRouter(prefix="/api/entries", tags=["editor"], dependencies=[Depends(current_user)])


def public(entry: Entry) -> RevisionPublic:
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
    )


def _translate(error: Exception) -> HTTPException:
    if isinstance(error, InvalidEntry):
        return HTTPException(
            422,
            detail=[
                {"entry_id": entry_id, "field": field, "msg": reason}
                for entry_id, field, reason in error.problems
            ],
        )
    if isinstance(error, EntryNotFound):
        return HTTPException(404, detail=str(error))
    return HTTPException(409, detail=str(error))


async def _run(function, *args, **kwargs):
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except (InvalidEntry, EntryNotFound, WorkflowError) as error:
        raise _translate(error) from None


@router.get("", response_model=EntriesPublic)
async def list_entries(
    db: KnowledgeDb,
    status: str | None = None,
    category: str | None = None,
    department: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    as_of: dt.date | None = None,
) -> EntriesPublic:
    """One revision per entry: the one in force on ``as_of`` (default today), else the latest."""
    entries = await run_in_threadpool(current_entries, db, as_of)
    if status:
        entries = [e for e in entries if e.status == status]
    if category:
        entries = [e for e in entries if e.category == category]
    if department:
        entries = [e for e in entries if e.department == department]
    if q:
        entries = [e for e in entries if q in e.title or any(q in x for x in e.questions)]
    return EntriesPublic(data=[public(e) for e in entries], count=len(entries))


@router.post("", response_model=RevisionPublic, status_code=201)
async def save_draft(body: EntryCreate, db: KnowledgeDb, editor: CurrentEditor) -> RevisionPublic:
    """Save an entry's content as a new draft revision (a new entry if the id is new)."""
    return public(await _run(workflow.save_draft, db, body.model_dump(), actor=editor))


@router.get("/{entry_id}/history", response_model=EntryHistoryPublic)
async def history(entry_id: str, db: KnowledgeDb) -> EntryHistoryPublic:
    revisions = await run_in_threadpool(revisions_of, db, entry_id)
    if not revisions:
        raise HTTPException(404, detail=f"no entry with id {entry_id!r}")
    events = await run_in_threadpool(audit_log, db, entry_id)
    return EntryHistoryPublic(
        entry_id=entry_id,
        revisions=[public(r) for r in revisions],
        audit=[AuditEventPublic(**event) for event in events],
    )


@router.post("/{entry_id}/revisions/{revision}/submit", response_model=RevisionPublic)
async def submit(entry_id: str, revision: Revision, db: KnowledgeDb, editor: CurrentEditor):
    return public(await _run(workflow.submit_for_review, db, entry_id, revision, actor=editor))


@router.post("/{entry_id}/revisions/{revision}/approve", response_model=RevisionPublic)
async def approve(
    entry_id: str, revision: Revision, db: KnowledgeDb, editor: CurrentEditor, settings: AppSettings
):
    """Publish a revision in review; it is answered from its valid_from on."""
    policy = workflow.Policy(separate_approver=settings.separate_approver)
    return public(await _run(workflow.approve, db, entry_id, revision, actor=editor, policy=policy))


@router.post("/{entry_id}/archive", status_code=204)
async def archive(entry_id: str, body: ArchiveRequest, db: KnowledgeDb, editor: CurrentEditor):
    await _run(workflow.archive, db, entry_id, actor=editor, reason=body.reason)


@router.post("/{entry_id}/rollback", response_model=RevisionPublic)
async def rollback(entry_id: str, body: RollbackRequest, db: KnowledgeDb, editor: CurrentEditor):
    return public(await _run(workflow.rollback, db, entry_id, body.to_revision, actor=editor))
