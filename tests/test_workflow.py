"""The editorial workflow on a real database: exact rows, statuses and audit events."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3

import pytest

from assistant.retrieval.engine import Engine
from knowledge.model import InvalidEntry, WorkflowError
from knowledge.store import audit_log, get_entry, knowledge_revision, open_db, revisions_of
from knowledge.workflow import Policy, approve, archive, rollback, save_draft, submit_for_review

PREMIUM = "kokuho-premium-calculation"


def new_draft(db, changes: dict, *, author="sato"):
    """A draft of the premium entry with ``changes`` on top of its current content."""
    return save_draft(db, {**get_entry(db, PREMIUM).content(), **changes}, actor=author)


def publish_new_revision(db, changes: dict, *, author="sato", approver="suzuki"):
    draft = new_draft(db, changes, author=author)
    submit_for_review(db, PREMIUM, draft.revision, actor=author)
    return approve(db, PREMIUM, draft.revision, actor=approver)


def test_draft_review_publish_records_each_step(starter_settings):
    db = open_db(starter_settings.database_path)
    before = knowledge_revision(db)
    published = publish_new_revision(db, {"fees": "なし"})
    assert (published.revision, published.status) == (2, "published")
    assert (published.author, published.reviewer) == ("sato", "suzuki")
    assert knowledge_revision(db) == before + 1
    actions = [(e["actor"], e["action"], e["revision"]) for e in audit_log(db, PREMIUM)]
    assert actions == [
        ("import", "import", 1),
        ("sato", "save_draft", 2),
        ("sato", "submit", 2),
        ("suzuki", "publish", 2),
    ]
    # The audit log names the field and keeps the text's length and hash, not the text
    # (an editor's draft may hold what must not stay in an append-only log).
    digest = hashlib.sha256("なし".encode()).hexdigest()
    assert audit_log(db, PREMIUM)[1]["detail"]["changes"] == {
        "fees": {"from": "", "to": {"chars": 2, "sha256": digest}}
    }


def test_an_author_cannot_approve_their_own_revision(starter_settings):
    db = open_db(starter_settings.database_path)
    draft = new_draft(db, {"fees": "なし"})
    submit_for_review(db, PREMIUM, draft.revision, actor="sato")
    with pytest.raises(WorkflowError, match="another editor must approve it"):
        approve(db, PREMIUM, draft.revision, actor="sato")
    assert get_entry(db, PREMIUM).revision == 1
    relaxed = approve(db, PREMIUM, draft.revision, actor="sato", policy=Policy(False))
    assert relaxed.status == "published"


def test_a_draft_must_be_reviewed_before_approval(starter_settings):
    db = open_db(starter_settings.database_path)
    draft = new_draft(db, {"fees": "なし"})
    with pytest.raises(WorkflowError, match="is draft; this needs it to be in_review"):
        approve(db, PREMIUM, draft.revision, actor="suzuki")


def test_a_scheduled_revision_takes_over_on_its_date(starter_settings):
    db = open_db(starter_settings.database_path)
    old = get_entry(db, PREMIUM)
    new_answer = "令和9年度の保険料率で計算します。" + old.answer
    publish_new_revision(db, {"answer": new_answer, "valid_from": "2027-04-01"})
    engine = Engine.load(starter_settings)
    question = old.questions[0]
    on_eve = engine.search(question, as_of=dt.date(2027, 3, 31))
    on_day = engine.search(question, as_of=dt.date(2027, 4, 1))
    assert (on_eve.best.entry_id, on_eve.best.revision) == (PREMIUM, 1)
    assert (on_day.best.entry_id, on_day.best.revision) == (PREMIUM, 2)
    assert engine.entry(PREMIUM, as_of=dt.date(2027, 3, 31)).answer == old.answer
    assert engine.entry(PREMIUM, as_of=dt.date(2027, 4, 1)).answer == new_answer


def test_archive_then_rollback(starter_settings):
    db = open_db(starter_settings.database_path)
    engine = Engine.load(starter_settings)
    question = get_entry(db, PREMIUM).questions[0]
    assert engine.search(question).best.entry_id == PREMIUM
    archive(db, PREMIUM, actor="suzuki", reason="制度改正のため")
    assert PREMIUM not in [c.entry_id for c in engine.search(question).candidates]
    restored = rollback(db, PREMIUM, 1, actor="suzuki")
    assert (restored.revision, restored.status) == (2, "published")
    assert engine.search(question).best.entry_id == PREMIUM
    assert [r.status for r in revisions_of(db, PREMIUM)] == ["archived", "published"]


def test_rollback_needs_a_revision_that_was_published(starter_settings):
    db = open_db(starter_settings.database_path)
    draft = new_draft(db, {"fees": "x"})
    with pytest.raises(WorkflowError, match="is draft"):
        rollback(db, PREMIUM, draft.revision, actor="suzuki")


def test_a_phrasing_of_another_entry_is_rejected_naming_both(starter_settings):
    db = open_db(starter_settings.database_path)
    taken = get_entry(db, "sodai-gomi").questions[0]
    data = {**get_entry(db, PREMIUM).content(), "questions": ["保険料の計算", f" {taken}！"]}
    with pytest.raises(InvalidEntry) as error:
        save_draft(db, data, actor="sato")
    assert f"entry '{PREMIUM}', field 'questions': item 2" in str(error.value)
    assert "of entry 'sodai-gomi'" in str(error.value)


def test_entries_of_one_title_may_share_its_phrasing(settings):
    """The same question with two answers (an import keeps both): each stays editable."""
    db = open_db(settings.database_path)
    question = {"title": "児童手当はいつ振り込まれますか", "questions": ["児童手当の支給日"]}
    save_draft(db, {**question, "id": "teate", "answer": "6月、10月、2月です。"}, actor="sato")
    save_draft(
        db, {**question, "id": "teate-2", "answer": "公務員は勤務先からです。"}, actor="sato"
    )
    edited = save_draft(
        db, {**question, "id": "teate-2", "answer": "公務員の方は勤務先から。"}, actor="sato"
    )
    assert edited.questions == get_entry(db, "teate").questions
    with pytest.raises(InvalidEntry, match="of entry 'teate'"):
        save_draft(db, {**question, "id": "x", "title": "別の題", "answer": "本文"}, actor="sato")


def test_the_audit_log_is_append_only(starter_settings):
    conn = sqlite3.connect(starter_settings.database_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
