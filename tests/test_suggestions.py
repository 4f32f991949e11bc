"""Suggested phrasings (knowledge.suggestions) on real SQLite over the starter entries:
where they come from, how they are grouped, accepted into a draft and rejected for good."""

from __future__ import annotations

import json

import pytest

from knowledge.errors import message_for
from knowledge.io import import_entries
from knowledge.model import InvalidEntry
from knowledge.store import audit_log, latest_revision, open_db, revisions_of
from knowledge.suggestions import (
    InvalidSuggestion,
    SuggestionDecided,
    SuggestionError,
    SuggestionNotFound,
    UnknownEntry,
    accept,
    clean_text,
    count_against,
    list_suggestions,
    reject,
    suggest,
    suggestion_counts,
)
from knowledge.tickets import get_ticket, resolve_ticket
from knowledge.workflow import save_draft
from tests.conftest import STARTER, handoff
from tests.personal_data import MASKED_FORMS, scan

ENTRY = "sodai-gomi"
OTHER = "gomi-bunbetsu"
WORDING = "ベッドを捨てるにはどうしたらいいですか"


@pytest.fixture
def db(settings):
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    yield db
    db.close()


def rows(db) -> list[dict]:
    return list(db.query("SELECT * FROM suggestions ORDER BY id"))


def staff(db, text=WORDING, entry_id=ENTRY, **more):
    return suggest(db, entry_id=entry_id, text=text, source="staff", actor="sato", **more)


def resident(db, text=WORDING, entry_id=ENTRY):
    return suggest(
        db, entry_id=entry_id, text=text, source="resident", actor="resident", session_id="s1"
    )


def test_wordings_are_grouped_by_key_with_their_evidence(db):
    first = staff(db, ticket_id=7)
    second = resident(db, "ベッドを捨てるには、どうしたらいいですか？")  # the same key
    third = resident(db)
    count_against(db, entry_id=ENTRY, text=WORDING, session_id="s2")
    lone = resident(db, "マットレスの処分方法")
    (group,) = list_suggestions(db)
    assert (group.entry_id, group.title) == (ENTRY, "粗大ごみの出し方")
    bed, mattress = group.wordings
    # The text most rows used; staff evidence first.
    assert (bed.id, bed.ids, bed.text) == (first, (first, second, third), WORDING)
    assert bed.sources == {"staff": 1, "resident": 2} and bed.against == 1
    assert bed.tickets == (7,) and bed.first_at <= bed.last_at
    assert (mattress.ids, mattress.sources, mattress.against) == (
        (lone,),
        {"staff": 0, "resident": 1},
        0,
    )
    assert suggestion_counts(db) == {"open": 2, "accepted": 0, "rejected": 0}


def test_entries_with_staff_evidence_come_first(db):
    resident(db, "ごみの出し方を知りたい", entry_id=OTHER)
    resident(db, "ごみの曜日は", entry_id=OTHER)
    staff(db)
    assert [g.entry_id for g in list_suggestions(db)] == [ENTRY, OTHER]


def test_a_phrasing_the_entry_already_has_is_not_suggested(db):
    assert staff(db, "粗大ごみ　出し方！") is None  # width, spaces, punctuation aside
    assert rows(db) == []


@pytest.mark.parametrize(
    "text, code",
    [
        ("   ", "suggestion.empty"),
        ("！？。", "suggestion.empty"),
        ("あ" * 201, "suggestion.too_long"),
        ("粗大ごみ\x00", "suggestion.control_characters"),
        ("粗大ごみ\u202e", "suggestion.control_characters"),
        ("粗大ごみ\x7f", "suggestion.control_characters"),
        ("粗大ごみ\ud800", "suggestion.control_characters"),
        ("<b>粗大ごみ</b>", "suggestion.html"),
    ],
)
def test_unusable_wordings_are_refused_with_their_code(db, text, code):
    with pytest.raises(InvalidSuggestion) as error:
        staff(db, text)
    assert error.value.code == code and error.value.params["field"] == "text"
    assert error.value.message == message_for(code, error.value.params)
    assert rows(db) == []


def test_a_wording_with_line_breaks_of_any_kind_is_one_line():
    assert clean_text(" 粗大ごみの\r\n出し方\rと\n料金 ") == "粗大ごみの 出し方 と 料金"


def test_only_entries_once_published_take_suggestions(db):
    with pytest.raises(UnknownEntry) as error:
        staff(db, entry_id="nai-entry")
    assert error.value.message == (
        "エントリ nai-entry は見つからないか、まだ公開されたことがありません。"
        "公開中のエントリを選んでください。"
    )
    draft = {"id": "shitagaki", "title": "下書き", "questions": ["下書きの質問"], "answer": "答"}
    save_draft(db, draft, actor="suzuki")
    with pytest.raises(UnknownEntry):
        staff(db, entry_id="shitagaki")
    assert rows(db) == []


def test_personal_numbers_never_reach_a_suggestion_unmasked(db, settings):
    for form, _kind in MASKED_FORMS:
        staff(db, f"粗大ごみの件で {form} に連絡ください")
        resident(db, f"{form} の者ですが粗大ごみについて")
        count_against(db, entry_id=ENTRY, text=f"番号は{form}です", session_id="s3")
    (group,) = list_suggestions(db)
    assert all("［" in wording.text for wording in group.wordings)
    db.conn.execute("PRAGMA wal_checkpoint(FULL)")
    assert scan(settings.home) == []


def test_accepting_makes_a_draft_with_the_wordings_and_publishes_nothing(db):
    published = latest_revision(db, ENTRY)
    bed = staff(db, ticket_id=3)
    also = resident(db, "ベッドを捨てるにはどうしたらいいですか。")
    mattress = resident(db, "マットレスの処分方法")
    draft = accept(
        db, ENTRY, [(bed, None), (mattress, "マットレス 処分 090-1234-5678")], actor="suzuki"
    )
    assert (draft.revision, draft.status, draft.author) == (
        published.revision + 1,
        "draft",
        "suzuki",
    )
    assert draft.questions == (*published.questions, WORDING, "マットレス 処分 ［電話番号］")
    assert draft.answer == published.answer and draft.title == published.title
    # What residents are answered with is still the published revision.
    assert [r.status for r in revisions_of(db, ENTRY)] == ["published", "draft"]
    decided = {row["id"]: (row["status"], row["revision"], row["decided_by"]) for row in rows(db)}
    accepted = ("accepted", draft.revision, "suzuki")
    assert decided == {bed: accepted, also: accepted, mattress: accepted}
    assert list_suggestions(db) == []
    (group,) = list_suggestions(db, "accepted")
    assert {w.text: w.revision for w in group.wordings} == {
        WORDING: draft.revision,
        "マットレスの処分方法": draft.revision,
    }
    assert suggestion_counts(db) == {"open": 0, "accepted": 2, "rejected": 0}
    saved, event = audit_log(db, ENTRY)[-2:]
    assert (saved["action"], saved["revision"]) == ("accept_suggestions", draft.revision)
    assert (event["action"], event["actor"]) == ("suggestion.accept", "suzuki")
    assert event["detail"]["ids"] == [bed, also, mattress]
    detail = json.dumps(event["detail"], ensure_ascii=False)
    assert "マットレス" not in detail and "ベッド" not in detail  # digests only
    # Accepted wordings are the entry's phrasings now: not suggested again.
    assert resident(db) is None


def test_a_wording_another_entry_has_is_refused_and_nothing_changes(db):
    taken = staff(db, "ペットボトルって何ごみ？")  # a phrasing of gomi-bunbetsu
    before = revisions_of(db, ENTRY)
    with pytest.raises(InvalidEntry) as error:
        accept(db, ENTRY, [(taken, None)], actor="suzuki")
    assert [p.code for p in error.value.problems] == ["item.phrasing_taken"]
    assert error.value.problems[0].params["other_entry"] == OTHER
    assert revisions_of(db, ENTRY) == before
    assert rows(db)[0]["status"] == "open"


def test_accept_refuses_what_is_not_an_open_suggestion_of_the_entry(db):
    mine, theirs = staff(db), staff(db, "分別の仕方を教えて", entry_id=OTHER)
    with pytest.raises(SuggestionError) as nothing:
        accept(db, ENTRY, [], actor="suzuki")
    assert nothing.value.code == "suggestion.nothing_selected"
    with pytest.raises(SuggestionNotFound) as elsewhere:
        accept(db, ENTRY, [(theirs, None)], actor="suzuki")
    assert elsewhere.value.params == {"suggestion_id": theirs, "entry_id": ENTRY}
    with pytest.raises(SuggestionNotFound):
        accept(db, ENTRY, [(999, None)], actor="suzuki")
    with pytest.raises(InvalidSuggestion) as edited:
        accept(db, ENTRY, [(mine, "<i>x</i>")], actor="suzuki")
    assert edited.value.code == "suggestion.html"
    reject(db, [mine], actor="tanaka")
    with pytest.raises(SuggestionDecided) as decided:
        accept(db, ENTRY, [(mine, None)], actor="suzuki")
    assert decided.value.message == (
        f"提案 #{mine} はすでに却下されています。最新の状態を表示しましたので、確認してください。"
    )
    assert len(revisions_of(db, ENTRY)) == 1


def test_a_rejected_wording_never_returns(db):
    first = staff(db)
    second = resident(db, "ベッドを捨てるには どうしたら いいですか")
    assert reject(db, [first], actor="suzuki", reason="粗大ごみではなく家具の回収業者の話") == 2
    assert list_suggestions(db) == []
    again = staff(db, "ベッドを捨てるにはどうしたらいいですか？")
    assert again is not None and rows(db)[-1]["status"] == "rejected"
    assert list_suggestions(db) == []
    (group,) = list_suggestions(db, "rejected")
    assert group.wordings[0].ids == (first, second, again)
    # For that entry only: the same words may still fit another.
    assert staff(db, entry_id=OTHER) is not None
    assert suggestion_counts(db) == {"open": 1, "accepted": 0, "rejected": 1}
    event = audit_log(db, ENTRY)[-1]
    assert (event["action"], event["detail"]["ids"]) == ("suggestion.reject", [first, second])
    assert set(event["detail"]["reason"]) == {"chars", "sha256"}


def test_reject_checks_its_reason_and_ids(db):
    first = staff(db)
    with pytest.raises(InvalidSuggestion) as long_reason:
        reject(db, [first], actor="suzuki", reason="あ" * 501)
    assert long_reason.value.code == "suggestion.too_long"
    assert long_reason.value.message == "却下の理由が501文字あります。500文字以内にしてください。"
    with pytest.raises(SuggestionNotFound):
        reject(db, [first, 999], actor="suzuki")
    assert rows(db)[0]["status"] == "open"  # all or nothing
    with pytest.raises(SuggestionError):
        list_suggestions(db, "pending")


def test_resolving_a_ticket_with_the_entry_suggests_its_question(db):
    ticket = handoff(
        db,
        {"role": "resident", "text": "こんにちは"},
        {"role": "resident", "text": "ベッドを捨てたい 連絡先 090-1234-5678"},
        {"role": "assistant", "text": "担当者におつなぎします。"},
    )
    resolved = resolve_ticket(db, ticket.id, "sato", entry_id=ENTRY)
    assert (resolved.status, resolved.answered_entry) == ("resolved", ENTRY)
    (row,) = rows(db)
    assert (row["text"], row["source"], row["ticket_id"]) == (
        "ベッドを捨てたい 連絡先 ［電話番号］",
        "staff",
        ticket.id,
    )
    assert (row["session_id"], row["actor"]) == ("s", "sato")
    assert audit_log(db)[-1]["detail"]["entry"] == ENTRY


def test_staff_may_reword_the_question_and_an_unknown_entry_changes_nothing(db):
    ticket = handoff(db, {"role": "resident", "text": "ベッドを捨てたい"}, session_id="t")
    with pytest.raises(UnknownEntry):
        resolve_ticket(db, ticket.id, "sato", entry_id="nai-entry")
    with pytest.raises(InvalidSuggestion):
        resolve_ticket(db, ticket.id, "sato", entry_id=ENTRY, question="<b>x</b>")
    assert get_ticket(db, ticket.id).status == "open" and rows(db) == []
    resolve_ticket(db, ticket.id, "sato", entry_id=ENTRY, question="ベッドの捨て方")
    assert [row["text"] for row in rows(db)] == ["ベッドの捨て方"]
    plain = handoff(db, {"role": "resident", "text": "別件です"}, session_id="u")
    assert resolve_ticket(db, plain.id, "sato").answered_entry == ""
    assert len(rows(db)) == 1
