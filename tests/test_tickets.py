from __future__ import annotations

import pytest

from knowledge.privacy import mask_personal_data
from knowledge.store import audit_log, open_db
from knowledge.tickets import (
    RESOLVED_NOTICE,
    InvalidReply,
    TicketClosed,
    TicketNotFound,
    append_turn,
    claim_ticket,
    find_open_ticket,
    get_ticket,
    messages_for,
    open_ticket,
    record_feedback,
    reply_to_ticket,
    resolve_ticket,
)
from tests.conftest import handoff


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


def handed_off(db, session_id: str = "s-3"):
    return handoff(
        db,
        {"role": "resident", "text": "人と話したい"},
        session_id=session_id,
        page="https://www.example.lg.jp/kokuho/",
    )


def test_claim_reply_resolve_reach_the_resident_and_the_audit_log(settings):
    db = open_db(settings.database_path)
    ticket = handed_off(db)
    assert ticket.page == "https://www.example.lg.jp/kokuho/"
    assert claim_ticket(db, ticket.id, "sato").claimed_by == "sato"
    replied = reply_to_ticket(db, ticket.id, "sato", "  保険年金課の佐藤です。ご用件をどうぞ。\n")
    assert replied.transcript[-1]["role"] == "staff"
    assert replied.transcript[-1]["text"] == "保険年金課の佐藤です。ご用件をどうぞ。"
    (message,) = messages_for(db, "s-3")
    assert (message["role"], message["text"]) == ("staff", "保険年金課の佐藤です。ご用件をどうぞ。")
    resolved = resolve_ticket(db, ticket.id, "sato", "保険料の納付方法を案内")
    assert (resolved.status, resolved.resolved_by, resolved.note) == (
        "resolved",
        "sato",
        "保険料の納付方法を案内",
    )
    later = messages_for(db, "s-3", after=message["id"])
    assert [(m["role"], m["text"]) for m in later] == [("system", RESOLVED_NOTICE)]
    assert messages_for(db, "other-session") == []
    actions = [(e["actor"], e["action"], e["detail"]["ticket_id"]) for e in audit_log(db)]
    assert actions == [
        ("sato", "ticket.claim", ticket.id),
        ("sato", "ticket.reply", ticket.id),
        ("sato", "ticket.resolve", ticket.id),
    ]


def test_a_reply_claims_an_unclaimed_ticket(settings):
    db = open_db(settings.database_path)
    ticket = handed_off(db)
    assert reply_to_ticket(db, ticket.id, "suzuki", "お待たせしました。").claimed_by == "suzuki"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("あ" * 2001, "limit is 2000"),
        ("ベル\x07", "control characters"),
        ("削除\x7f", "control characters"),
        ("改行\r\n\u200b", "control characters"),
        ("<b>至急</b>", "HTML tags"),
    ],
)
def test_an_invalid_reply_is_refused_and_changes_nothing(settings, text, problem):
    db = open_db(settings.database_path)
    ticket = handed_off(db)
    with pytest.raises(InvalidReply, match=problem):
        reply_to_ticket(db, ticket.id, "sato", text)
    assert get_ticket(db, ticket.id) == ticket
    assert messages_for(db, "s-3") == [] and audit_log(db) == []


def test_a_reply_typed_with_windows_line_breaks_keeps_them_as_line_breaks(settings):
    # A form posted from Windows sends CRLF: the reply is the same text with LF.
    db = open_db(settings.database_path)
    ticket = handed_off(db)
    replied = reply_to_ticket(db, ticket.id, "sato", "お待たせしました。\r\n保険年金課です。\r\n")
    assert replied.transcript[-1]["text"] == "お待たせしました。\n保険年金課です。"


def test_a_resolved_ticket_takes_no_more_replies_claims_or_resolutions(settings):
    db = open_db(settings.database_path)
    ticket = handed_off(db)
    resolve_ticket(db, ticket.id, "sato")
    for change in (
        lambda: reply_to_ticket(db, ticket.id, "sato", "追伸です"),
        lambda: claim_ticket(db, ticket.id, "sato"),
        lambda: resolve_ticket(db, ticket.id, "sato"),
    ):
        with pytest.raises(TicketClosed, match=f"ticket {ticket.id} is already resolved"):
            change()
    assert len(messages_for(db, "s-3")) == 1  # only the notice of the first resolution


def test_feedback_text_is_stored_masked(settings):
    db = open_db(settings.database_path)
    record_feedback(
        db,
        session_id="s-4",
        entry_id="tennyu",
        revision=2,
        helpful=False,
        text="違う。連絡は taro@example.jp へ",
    )
    (row,) = db["feedback"].rows
    assert (row["entry_id"], row["revision"], row["helpful"]) == ("tennyu", 2, 0)
    assert row["text"] == "違う。連絡は ［メールアドレス］ へ"
