"""The unanswered-question queue (knowledge.unanswered): which tickets' questions it
holds, on real SQLite tickets, and how it groups them, on vectors worked out by hand."""

from __future__ import annotations

import numpy as np

from knowledge.store import open_db
from knowledge.unanswered import Question, group_questions, unanswered_questions
from tests.conftest import handoff


def _question(text: str, at: str) -> Question:
    return Question(kind="handoff", text=text, at=at, ticket_id=None, entry_id=None)


def test_questions_join_the_group_whose_first_question_is_most_similar():
    items = [_question(text, f"2026-12-0{i + 1}") for i, text in enumerate("abcde")]
    angle = np.cos(np.deg2rad(30))  # cos 30° ≈ 0.866 ≥ 0.8; cos 45° ≈ 0.707 < 0.8
    vectors = np.array(
        [
            [1.0, 0.0],  # a: a group of its own
            [0.0, 1.0],  # b: 90° from a, another group
            [angle, 0.5],  # c: 30° from a: joins a's group
            [np.cos(np.deg2rad(45)), np.sin(np.deg2rad(45))],  # d: 45° from both: alone
            # e: 5° from b, 40° from d (cos 40° ≈ 0.766): joins b's group
            [np.cos(np.deg2rad(85)), np.sin(np.deg2rad(85))],
        ]
    )
    groups = group_questions(items, vectors)
    assert [[q.text for q in group] for group in groups] == [["a", "c"], ["b", "e"], ["d"]]
    # At exactly the threshold a question joins; just under it, it does not.
    assert len(group_questions(items[:2], np.array([[1.0, 0.0], [0.8, 0.6]]))) == 1
    assert len(group_questions(items[:2], np.array([[1.0, 0.0], [0.79, 0.61]]))) == 2
    assert group_questions([], np.zeros((0, 2))) == []


def test_the_queue_holds_each_tickets_failed_question_with_its_kind(settings):
    db = open_db(settings.database_path)
    feedback = {"role": "resident", "text": "粗大ごみの出し方を教えて"}
    handoff(
        db,
        feedback,
        session_id="s1",
        reason="negative_feedback",
        candidates=[{"entry_id": "sodai-gomi"}],
    )
    asked = {"role": "resident", "text": "住民票はどこで取れますか"}
    handoff(db, asked, session_id="s2", candidates=[{"entry_id": "juminhyo"}])
    greeted = {"role": "resident", "text": "こんにちは"}
    handoff(db, greeted, session_id="s3", reason="none_of_these")
    questions = unanswered_questions(db, days=30)
    assert [(q.kind, q.text, q.entry_id) for q in questions] == [
        ("negative_feedback", "粗大ごみの出し方を教えて", "sodai-gomi"),
        ("handoff", "住民票はどこで取れますか", None),
    ]
    db.execute("UPDATE tickets SET created_at = '2020-01-01T00:00:00+00:00' WHERE id = 1")
    db.conn.commit()
    assert [q.ticket_id for q in unanswered_questions(db, days=30)] == [2]
