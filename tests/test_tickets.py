from __future__ import annotations

import pytest

from knowledge.store import open_db
from knowledge.tickets import (
    TicketNotFound,
    append_turn,
    find_open_ticket,
    get_ticket,
    mask_personal_data,
    open_ticket,
    resolve_ticket,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("番号は1234 5678 9012です", "番号は［個人番号］です"),
        ("電話は090-1234-5678まで", "電話は［電話番号］まで"),
        ("０３－１２３４－５６７８", "［電話番号］"),
        ("taro@example.jp に送って", "［メールアドレス］ に送って"),
        ("カード 4111-1111-1111-1111", "カード ［カード番号］"),
        ("住民票を2通ください", "住民票を2通ください"),
    ],
)
def test_personal_numbers_are_masked(text, expected):
    assert mask_personal_data(text) == expected


def test_ticket_keeps_masked_transcript_and_candidates(settings):
    db = open_db(settings.database_path)
    ticket = open_ticket(
        db,
        session_id="session-1",
        reason="no_confident_answer",
        transcript=[{"role": "resident", "text": "090-1234-5678に電話ください"}],
        candidates=[{"entry_id": "tennyu", "score": 0.3}],
    )
    stored = get_ticket(db, ticket.id)
    assert stored.status == "open"
    assert stored.transcript == [{"role": "resident", "text": "［電話番号］に電話ください"}]
    assert stored.candidates == [{"entry_id": "tennyu", "score": 0.3}]
    raw = db.execute("SELECT transcript FROM tickets").fetchone()[0]
    assert "090" not in raw


def test_one_open_ticket_per_session_collects_later_messages(settings):
    db = open_db(settings.database_path)
    first = open_ticket(
        db,
        session_id="s-2",
        reason="requested_human",
        transcript=[{"role": "resident", "text": "人と話したい"}],
        candidates=[],
    )
    again = open_ticket(
        db,
        session_id="s-2",
        reason="requested_human",
        transcript=[
            {"role": "resident", "text": "人と話したい"},
            {"role": "resident", "text": "まだですか"},
        ],
        candidates=[],
    )
    assert again.id == first.id
    append_turn(db, first.id, {"role": "resident", "text": "よろしく"})
    assert [t["text"] for t in get_ticket(db, first.id).transcript] == [
        "人と話したい",
        "まだですか",
        "よろしく",
    ]
    resolve_ticket(db, first.id)
    assert find_open_ticket(db, "s-2") is None


def test_unknown_ticket(settings):
    with pytest.raises(TicketNotFound, match="no handoff ticket with id 99"):
        get_ticket(open_db(settings.database_path), 99)
