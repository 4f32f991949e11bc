"""Handoff tickets: a conversation the assistant hands to a person, with its context.

A ticket holds the transcript (personal numbers masked before storage), what the
assistant understood, the engine's candidates and why it handed off. While a session has
an open ticket the assistant stays silent there; the resident's messages are appended.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import sqlite_utils

from knowledge.inquiries import failed_question
from knowledge.model import KnowledgeError, checked_text
from knowledge.privacy import clean_page, mask_found, mask_personal_data, mask_turns
from knowledge.store import now_iso, record_audit, write_transaction

MAX_REPLY_CHARS = 2000
# What the resident's chat shows when the person hands the conversation back.
RESOLVED_NOTICE = (
    "職員との対応を終了しました。引き続き自動応答でお答えします。ご質問があれば入力してください。"
)


class TicketNotFound(KnowledgeError):
    code = "ticket.not_found"

    def __init__(self, ticket_id: int):
        super().__init__(f"no handoff ticket with id {ticket_id}", ticket_id=ticket_id)


class TicketClosed(KnowledgeError):
    code = "ticket.closed"

    def __init__(self, ticket_id: int):
        super().__init__(f"handoff ticket {ticket_id} is already resolved", ticket_id=ticket_id)


class InvalidReply(KnowledgeError):
    """A staff reply or note that cannot be sent: empty, too long, control characters.
    ``field`` in its params: ``text`` (the reply) or ``note``."""


@dataclass(frozen=True)
class Ticket:
    id: int
    session_id: str
    status: str
    reason: str
    channel: str
    transcript: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    created_at: str
    updated_at: str
    page: str = ""
    # The resident's question that the assistant could not answer ("" if none was asked).
    question: str = ""
    claimed_by: str = ""
    claimed_at: str = ""
    resolved_by: str = ""
    resolved_at: str = ""
    note: str = ""
    # The entry that answered it, as staff said when resolving ("" if none).
    answered_entry: str = ""
    # Only in the ticket a reply or resolve returns: the kinds of personal data that
    # were masked in the text just sent (staff are warned on screen).
    masked: tuple[str, ...] = ()


def _ticket(row: dict) -> Ticket:
    return Ticket(
        id=row["id"],
        session_id=row["session_id"],
        status=row["status"],
        reason=row["reason"],
        channel=row["channel"] or "",
        transcript=json.loads(row["transcript"] or "[]"),
        candidates=json.loads(row["candidates"] or "[]"),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        page=row["page"] or "",
        question=row["question"] or "",
        claimed_by=row["claimed_by"] or "",
        claimed_at=row["claimed_at"] or "",
        resolved_by=row["resolved_by"] or "",
        resolved_at=row["resolved_at"] or "",
        note=row["note"] or "",
        answered_entry=row["answered_entry"] or "",
    )


def open_ticket(
    db: sqlite_utils.Database,
    *,
    session_id: str,
    reason: str,
    transcript: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    channel: str = "web",
    page: str = "",
) -> Ticket:
    """Open a ticket for the session, or add to the one already open; return it."""
    stamp = now_iso()
    with write_transaction(db):
        existing = find_open_ticket(db, session_id)
        if existing is not None:
            turns = existing.transcript + mask_turns(transcript[len(existing.transcript) :])
            db["tickets"].update(
                existing.id,
                {
                    "transcript": json.dumps(turns, ensure_ascii=False),
                    "question": existing.question or failed_question(turns),
                    "updated_at": stamp,
                },
            )
            ticket_id = existing.id
        else:
            turns = mask_turns(transcript)
            ticket_id = (
                db["tickets"]
                .insert(
                    {
                        "session_id": session_id,
                        "status": "open",
                        "reason": reason,
                        "channel": channel,
                        "page": clean_page(page),
                        "transcript": json.dumps(turns, ensure_ascii=False),
                        "question": failed_question(turns),
                        "candidates": json.dumps(candidates, ensure_ascii=False),
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                )
                .last_pk
            )
    return get_ticket(db, ticket_id)


def append_turn(db: sqlite_utils.Database, ticket_id: int, turn: dict[str, Any]) -> Ticket:
    with write_transaction(db):
        ticket = get_ticket(db, ticket_id)
        transcript = ticket.transcript + mask_turns([turn])
        db["tickets"].update(
            ticket_id,
            {"transcript": json.dumps(transcript, ensure_ascii=False), "updated_at": now_iso()},
        )
    return get_ticket(db, ticket_id)


def get_ticket(db: sqlite_utils.Database, ticket_id: int) -> Ticket:
    rows = list(db.query("SELECT * FROM tickets WHERE id = ?", [ticket_id]))
    if not rows:
        raise TicketNotFound(ticket_id)
    return _ticket(rows[0])


def find_open_ticket(db: sqlite_utils.Database, session_id: str) -> Ticket | None:
    rows = list(
        db.query(
            "SELECT * FROM tickets WHERE session_id = ? AND status = 'open' ORDER BY id LIMIT 1",
            [session_id],
        )
    )
    return _ticket(rows[0]) if rows else None


def list_tickets(db: sqlite_utils.Database, status: str | None = None) -> list[Ticket]:
    if status:
        rows = db.query("SELECT * FROM tickets WHERE status = ? ORDER BY id", [status])
    else:
        rows = db.query("SELECT * FROM tickets ORDER BY id")
    return [_ticket(row) for row in rows]


def _checked_text(text: str, field: str) -> tuple[str, list[str]]:
    """Staff text (``field``: text, the reply, or note) as it may be stored and sent:
    checked, personal numbers masked (the kinds masked come back too)."""
    what = {"text": "the reply", "note": "the note"}[field]
    text = checked_text(
        text, error=InvalidReply, prefix="reply", field=field, name=what, limit=MAX_REPLY_CHARS
    )
    return mask_found(text)


def text_digest(text: str) -> dict[str, Any]:
    """What the append-only audit log keeps of free text: its length and a hash, never
    the text (it can carry personal numbers, and the audit log is never deleted)."""
    return {"chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def _open(db: sqlite_utils.Database, ticket_id: int) -> Ticket:
    ticket = get_ticket(db, ticket_id)
    if ticket.status != "open":
        raise TicketClosed(ticket_id)
    return ticket


def _audit(db: sqlite_utils.Database, actor: str, action: str, ticket: Ticket, **detail) -> None:
    record_audit(
        db,
        actor=actor,
        action=action,
        entry_id=None,
        revision=None,
        detail={"ticket_id": ticket.id, "session_id": ticket.session_id, **detail},
    )


def _post(db: sqlite_utils.Database, ticket: Ticket, role: str, author: str, text: str) -> int:
    return (
        db["chat_messages"]
        .insert(
            {
                "session_id": ticket.session_id,
                "ticket_id": ticket.id,
                "role": role,
                "author": author,
                "text": text,
                "at": now_iso(),
            }
        )
        .last_pk
    )


def claim_ticket(db: sqlite_utils.Database, ticket_id: int, actor: str) -> Ticket:
    """``actor`` takes the conversation (taking it over from a colleague is allowed)."""
    with write_transaction(db):
        ticket = _open(db, ticket_id)
        stamp = now_iso()
        db["tickets"].update(
            ticket_id, {"claimed_by": actor, "claimed_at": stamp, "updated_at": stamp}
        )
        _audit(db, actor, "ticket.claim", ticket, previous=ticket.claimed_by or None)
    return get_ticket(db, ticket_id)


def reply_to_ticket(db: sqlite_utils.Database, ticket_id: int, actor: str, text: str) -> Ticket:
    """Send ``text`` to the resident's chat and add it to the transcript, in one commit.

    A reply also claims an unclaimed ticket for ``actor``.
    """
    text, masked = _checked_text(text, "text")
    with write_transaction(db):
        ticket = _open(db, ticket_id)
        stamp = now_iso()
        message_id = _post(db, ticket, "staff", actor, text)
        turn = {"role": "staff", "author": actor, "text": text, "at": stamp}
        changes = {
            "transcript": json.dumps(ticket.transcript + [turn], ensure_ascii=False),
            "updated_at": stamp,
        }
        if not ticket.claimed_by:
            changes.update(claimed_by=actor, claimed_at=stamp)
        db["tickets"].update(ticket_id, changes)
        _audit(db, actor, "ticket.reply", ticket, message_id=message_id)
    return replace(get_ticket(db, ticket_id), masked=tuple(masked))


def resolve_ticket(
    db: sqlite_utils.Database,
    ticket_id: int,
    actor: str = "system",
    note: str = "",
    entry_id: str | None = None,
    question: str | None = None,
) -> Ticket:
    """Close the ticket; the assistant answers the resident's next message again.

    With ``entry_id`` (the entry that answered the resident), the resident's question, or
    ``question`` as staff reworded it, is suggested as a phrasing of that entry in the same
    transaction: an unknown entry or an unusable wording fails the resolve and changes
    nothing.
    """
    # Imported here: suggestions build on the workflow, which reads tickets.
    from knowledge.suggestions import add_suggestion

    note, masked = _checked_text(note, "note") if note.strip() else ("", [])
    with write_transaction(db):
        ticket = _open(db, ticket_id)
        suggestion = None
        if entry_id:
            suggestion = add_suggestion(
                db,
                entry_id=entry_id,
                text=ticket.question if question is None else question,
                source="staff",
                actor=actor,
                ticket_id=ticket.id,
                session_id=ticket.session_id,
            )
        stamp = now_iso()
        db["tickets"].update(
            ticket_id,
            {
                "status": "resolved",
                "resolved_by": actor,
                "resolved_at": stamp,
                "note": note,
                "answered_entry": entry_id or "",
                "updated_at": stamp,
            },
        )
        _post(db, ticket, "system", actor, RESOLVED_NOTICE)
        detail = {"note": text_digest(note) if note else None}
        if entry_id:
            detail.update(entry=entry_id, suggestion=suggestion)
        _audit(db, actor, "ticket.resolve", ticket, **detail)
    return replace(get_ticket(db, ticket_id), masked=tuple(masked))


def messages_for(db: sqlite_utils.Database, session_id: str, after: int = 0) -> list[dict]:
    """Messages from people to the resident's chat with an id above ``after``, oldest first."""
    return list(
        db.query(
            "SELECT id, role, text, at FROM chat_messages WHERE session_id = ? AND id > ? "
            "ORDER BY id LIMIT 100",
            [session_id, after],
        )
    )


def record_feedback(
    db: sqlite_utils.Database,
    *,
    session_id: str,
    entry_id: str | None,
    revision: int | None,
    helpful: bool,
    text: str = "",
) -> int:
    """Store a resident's verdict on an answer (the text with personal numbers masked)."""
    with write_transaction(db):
        return (
            db["feedback"]
            .insert(
                {
                    "session_id": session_id,
                    "entry_id": entry_id,
                    "revision": revision,
                    "helpful": int(helpful),
                    "text": mask_personal_data(text)[:1000],
                    "at": now_iso(),
                }
            )
            .last_pk
        )
