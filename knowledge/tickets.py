"""Handoff tickets: a conversation the assistant hands to a person, with its context.

A ticket holds the transcript (personal numbers masked before storage), what the
assistant understood, the engine's candidates and why it handed off. While a session has
an open ticket the assistant stays silent there; the resident's messages are appended.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from knowledge.model import KnowledgeError
from knowledge.store import now_iso, write_transaction

# Order matters: longer digit runs first, so a card number is not read as a phone number.
_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "［メールアドレス］"),
    (re.compile(r"(?<!\d)(?:\d[ -]?){15}\d(?!\d)"), "［カード番号］"),
    (re.compile(r"(?<!\d)\d{4}[ -]?\d{4}[ -]?\d{4}(?!\d)"), "［個人番号］"),
    (re.compile(r"(?<!\d)0\d{1,4}[-(（ ]?\d{1,4}[-)） ]?\d{3,4}(?!\d)"), "［電話番号］"),
)


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses, card numbers, My Numbers and phone numbers."""
    # Full-width digits are common in Japanese input; match on the NFKC form.
    masked = unicodedata.normalize("NFKC", text) if re.search(r"[０-９＠]", text) else text
    for pattern, label in _MASKS:
        masked = pattern.sub(label, masked)
    return masked


class TicketNotFound(KnowledgeError):
    def __init__(self, ticket_id: int):
        super().__init__(f"no handoff ticket with id {ticket_id}")


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
    )


def _masked_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**turn, "text": mask_personal_data(str(turn.get("text", "")))} for turn in turns]


def open_ticket(
    db: sqlite_utils.Database,
    *,
    session_id: str,
    reason: str,
    transcript: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    channel: str = "web",
) -> Ticket:
    """Open a ticket for the session, or add to the one already open; return it."""
    stamp = now_iso()
    with write_transaction(db):
        existing = find_open_ticket(db, session_id)
        if existing is not None:
            db["tickets"].update(
                existing.id,
                {
                    "transcript": json.dumps(
                        existing.transcript + _masked_turns(transcript[len(existing.transcript) :]),
                        ensure_ascii=False,
                    ),
                    "updated_at": stamp,
                },
            )
            ticket_id = existing.id
        else:
            ticket_id = (
                db["tickets"]
                .insert(
                    {
                        "session_id": session_id,
                        "status": "open",
                        "reason": reason,
                        "channel": channel,
                        "transcript": json.dumps(_masked_turns(transcript), ensure_ascii=False),
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
        transcript = ticket.transcript + _masked_turns([turn])
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


def resolve_ticket(db: sqlite_utils.Database, ticket_id: int) -> Ticket:
    with write_transaction(db):
        get_ticket(db, ticket_id)
        db["tickets"].update(ticket_id, {"status": "resolved", "updated_at": now_iso()})
    return get_ticket(db, ticket_id)
