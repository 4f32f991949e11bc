"""Staff: the handoff inbox. Read a ticket's whole context, claim it, reply into the
resident's chat, resolve it (which hands the conversation back to the assistant).

Every change is committed before the response and written to the audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from api.auth import StaffUser, require_staff
from api.deps import KnowledgeDb
from api.routes.editor import public_revision
from api.schemas import (
    SQLITE_INT_MAX,
    ProposeRequest,
    RevisionPublic,
    TicketPublic,
    TicketReply,
    TicketResolve,
    TicketsPublic,
)
from knowledge import tickets, workflow
from knowledge.actors import actor_names
from knowledge.model import EntryNotFound
from knowledge.store import get_entry
from knowledge.tickets import Ticket

TicketId = Annotated[int, Path(ge=1, le=SQLITE_INT_MAX)]
router = APIRouter(prefix="/api/tickets", tags=["staff"], dependencies=[Depends(require_staff)])


def people_on(ticket: Ticket) -> set[str]:
    return {ticket.claimed_by, ticket.resolved_by} | {
        str(turn.get("author") or "") for turn in ticket.transcript
    }


def people(db, found: list[Ticket]) -> dict[str, str]:
    """Readable names for everyone who handled ``found``."""
    return actor_names(db, {actor for ticket in found for actor in people_on(ticket)})


def answered_titles(db, found: list[Ticket]) -> dict[str, str]:
    """The title of each entry staff said answered one of ``found``: as residents see it
    today (the revision in force), else its latest revision's."""
    titles = {}
    for entry_id in {ticket.answered_entry for ticket in found if ticket.answered_entry}:
        try:
            titles[entry_id] = get_entry(db, entry_id).title
        except EntryNotFound:
            pass
    return titles


def public(
    ticket: Ticket, names: dict[str, str], titles: dict[str, str] | None = None
) -> TicketPublic:
    start = dt.datetime.fromisoformat(ticket.created_at)
    end = dt.datetime.fromisoformat(ticket.resolved_at) if ticket.resolved_at else None
    waited = (end or dt.datetime.now(dt.timezone.utc)) - start
    return TicketPublic(
        id=ticket.id,
        status=ticket.status,
        reason=ticket.reason,
        channel=ticket.channel,
        page=ticket.page,
        question=ticket.question,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        waiting_s=max(0, int(waited.total_seconds())),
        claimed_by=ticket.claimed_by,
        claimed_at=ticket.claimed_at,
        resolved_by=ticket.resolved_by,
        resolved_at=ticket.resolved_at,
        note=ticket.note,
        answered_entry=ticket.answered_entry,
        answered_title=(titles or {}).get(ticket.answered_entry, ""),
        transcript=ticket.transcript,
        candidates=ticket.candidates,
        names={actor: names[actor] for actor in people_on(ticket) if actor in names},
        masked=list(ticket.masked),
    )


def _with_names(db, ticket: Ticket) -> TicketPublic:
    return public(ticket, people(db, [ticket]), answered_titles(db, [ticket]))


@router.get("", response_model=TicketsPublic)
def list_tickets(
    db: KnowledgeDb,
    user: StaffUser,
    view: Annotated[
        Literal["all", "new", "mine", "open", "resolved"],
        Query(description="new: open and unclaimed; mine: open and claimed by you"),
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TicketsPublic:
    """Open tickets longest-waiting first; resolved (and all) newest first."""
    status = {"new": "open", "mine": "open", "open": "open", "resolved": "resolved"}.get(view)
    found = tickets.list_tickets(db, status)
    if view == "new":
        found = [t for t in found if not t.claimed_by]
    elif view == "mine":
        found = [t for t in found if t.claimed_by == user.name]
    if view in ("resolved", "all"):
        found.reverse()
    found = found[:limit]
    names = people(db, found)
    titles = answered_titles(db, found)
    data = [public(t, names, titles) for t in found]
    return TicketsPublic(data=data, count=len(data))


@router.get("/{ticket_id}", response_model=TicketPublic)
def read_ticket(ticket_id: TicketId, db: KnowledgeDb) -> TicketPublic:
    return _with_names(db, tickets.get_ticket(db, ticket_id))


@router.post("/{ticket_id}/claim", response_model=TicketPublic)
def claim(ticket_id: TicketId, db: KnowledgeDb, user: StaffUser) -> TicketPublic:
    return _with_names(db, tickets.claim_ticket(db, ticket_id, user.name))


@router.post("/{ticket_id}/reply", response_model=TicketPublic)
def reply(ticket_id: TicketId, body: TicketReply, db: KnowledgeDb, user: StaffUser) -> TicketPublic:
    return _with_names(db, tickets.reply_to_ticket(db, ticket_id, user.name, body.text))


@router.post("/{ticket_id}/resolve", response_model=TicketPublic)
def resolve(
    ticket_id: TicketId, body: TicketResolve, db: KnowledgeDb, user: StaffUser
) -> TicketPublic:
    """Close the ticket; with ``entry_id``, suggest the resident's question (or staff's
    rewording of it) as a phrasing of the entry that answered it."""
    resolved = tickets.resolve_ticket(
        db, ticket_id, user.name, body.note, entry_id=body.entry_id, question=body.question
    )
    return _with_names(db, resolved)


@router.post("/{ticket_id}/propose", response_model=RevisionPublic, status_code=201)
def propose(
    ticket_id: TicketId, body: ProposeRequest, db: KnowledgeDb, user: StaffUser
) -> RevisionPublic:
    """A draft entry for editors from the resident's question and the staff answer."""
    entry = workflow.propose_from_ticket(
        db,
        ticket_id,
        actor=user.name,
        entry_id=body.id,
        title=body.title,
        question=body.question,
        answer=body.answer,
    )
    return public_revision(entry)
