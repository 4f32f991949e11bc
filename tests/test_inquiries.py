"""The question that failed: which resident message a ticket, its card, the proposal and
the unanswered queue show (knowledge.inquiries), on real SQLite tickets."""

from __future__ import annotations

import json
import sqlite3

import pytest

from knowledge.inquiries import before_handoff, failed_question
from knowledge.store import open_db
from knowledge.tickets import append_turn, get_ticket
from tests.conftest import handoff

HANDOFF = {"role": "assistant", "text": "職員にお伝えしました。しばらくお待ちください。"}


def said(text: str, intent: str | None = None) -> dict:
    return {"role": "resident", "text": text, "intent": intent}


def handed_off(db, *turns: dict):
    """A ticket opened for a conversation of ``turns`` and the handoff message."""
    return handoff(db, *turns, HANDOFF)


def bot(text: str) -> dict:
    return {"role": "assistant", "text": text}


TREE = "隣の家の木の枝がうちの庭に伸びてきて困っています"
TRANSCRIPTS = {
    "a request for a person after a real question": (
        [
            said("こんにちは", "greet"),
            bot("こんにちは。"),
            said(TREE, "inquiry"),
            bot("次のどれについてのご質問ですか。"),
            said("人と話したい", "request_human"),
        ],
        TREE,
    ),
    "junk markup typed first": (
        [
            said("<div class='x'>**</div>", "out_of_scope"),
            bot("お答えできません。"),
            said("粗大ごみの出し方を知りたい", "inquiry"),
            bot("粗大ごみは…"),
            said("/feedback_negative", "feedback_negative"),
        ],
        "粗大ごみの出し方を知りたい",
    ),
    "two misses": (
        [
            said("温水プールの営業時間", "inquiry"),
            bot("言い換えてください。"),
            said("市民プールはいつ開いていますか", "inquiry"),
        ],
        "市民プールはいつ開いていますか",
    ),
    "only greetings": (
        [
            said("こんにちは", "greet"),
            bot("こんにちは。"),
            said("ありがとう", "thanks"),
            said("/request_human", "request_human"),
        ],
        "",
    ),
    "the degraded chat, without intents": (
        [
            said("犬の登録はどこでできますか"),
            bot("次のどれ…"),
            said("/none_of_these"),
            said("担当の方に代わってください"),
            said("よろしくお願いします！"),
        ],
        "犬の登録はどこでできますか",
    ),
    "symbols only and a typed choice": (
        [
            said("住民票の写しがほしい", "inquiry"),
            bot("次のどれ…"),
            said("2番目", "choose_entry"),
            said("？？？ 123", "out_of_scope"),
        ],
        "住民票の写しがほしい",
    ),
}


@pytest.mark.parametrize("turns, expected", TRANSCRIPTS.values(), ids=TRANSCRIPTS.keys())
def test_the_ticket_keeps_the_last_real_question_before_the_handoff(tmp_path, turns, expected):
    db = open_db(tmp_path / "knowledge.db")
    ticket = handed_off(db, *turns)
    assert get_ticket(db, ticket.id).question == expected
    stored = db.execute("SELECT question FROM tickets WHERE id = ?", [ticket.id]).fetchone()
    assert stored == (expected,)


def test_messages_after_the_handoff_do_not_change_the_question(tmp_path):
    db = open_db(tmp_path / "knowledge.db")
    ticket = handed_off(db, said(TREE, "inquiry"), bot("…"), said("人と話したい", "request_human"))
    later = append_turn(db, ticket.id, {"role": "resident", "text": "剪定は誰がするのでしょうか"})
    assert later.question == TREE


def test_the_question_is_masked_like_the_transcript(tmp_path):
    db = open_db(tmp_path / "knowledge.db")
    ticket = handed_off(db, said("090-1234-5678に電話をください", "inquiry"))
    assert ticket.question == "［電話番号］に電話をください"


def test_a_version_5_database_gets_each_tickets_question_from_its_transcript(tmp_path):
    path = tmp_path / "knowledge.db"
    open_db(path).close()
    transcript = [
        said("<b>test</b>", "out_of_scope"),
        said(TREE, "inquiry"),
        said("人と話したい", "request_human"),
        HANDOFF,
        said("まだでしょうか、剪定の費用が知りたいです"),  # added after the handoff
    ]
    with sqlite3.connect(path) as conn:  # as schema version 5 was: no question column
        conn.execute("ALTER TABLE tickets DROP COLUMN question")
        conn.execute("ALTER TABLE tickets DROP COLUMN answered_entry")  # nor version 7's
        conn.execute("DROP TABLE suggestions")
        conn.execute(
            "INSERT INTO tickets (session_id, status, reason, transcript, candidates, "
            "created_at, updated_at) VALUES ('s', 'open', 'requested_human', ?, '[]', "
            "'2026-01-05T00:00:00+00:00', '2026-01-05T00:00:00+00:00')",
            [json.dumps(transcript, ensure_ascii=False)],
        )
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    db = open_db(path)
    assert [t["question"] for t in db["tickets"].rows] == [TREE]


def test_before_handoff_ends_at_the_assistants_last_turn():
    turns = [said("a"), bot("b"), said("c"), bot("d"), said("e")]
    assert before_handoff(turns) == turns[:4]
    assert before_handoff([said("a")]) == [said("a")]
    assert failed_question([]) == ""
