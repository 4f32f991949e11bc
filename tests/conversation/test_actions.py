"""Custom actions run like functions: a named tracker, a CollectingDispatcher, exact output."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.conversation import dialogue
from assistant.conversation.actions import runtime
from assistant.conversation.actions.answer import ActionAnswer, ActionAnswerChoice
from assistant.conversation.actions.feedback import ActionFeedback
from assistant.conversation.actions.handoff import ActionHandoff
from assistant.conversation.actions.smalltalk import ActionSmallTalk
from assistant.conversation.dialogue import REPHRASE, ordinal
from knowledge.store import get_entry, open_db
from knowledge.tickets import find_open_ticket, get_ticket


@pytest.fixture
def actions_home(starter_settings, monkeypatch):
    monkeypatch.setenv("MADOGUCHI_HOME", str(starter_settings.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(starter_settings.encoder_path))
    for cached in (runtime.settings, runtime.engine):
        cached.cache_clear()
    yield starter_settings
    for cached in (runtime.settings, runtime.engine):
        cached.cache_clear()


def tracker(
    text: str, intent: str = "inquiry", entities=None, history=None, slots=None, metadata=None
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "intent_ranking": [{"name": intent, "confidence": 0.9}],
        "entities": entities or [],
    } | ({"metadata": metadata} if metadata else {})  # Rasa keeps it in the parse data too
    events = list(history or []) + [
        {"event": "user", "text": text, "timestamp": 1.0, "parse_data": latest}
        | ({"metadata": metadata} if metadata else {})
    ]
    return Tracker("resident-1", slots or {}, latest, events, False, None, {}, "rest")


def payloads(dispatcher: CollectingDispatcher) -> list[dict]:
    return [m["custom"]["madoguchi"] for m in dispatcher.messages]


def test_answer_sends_the_entry_text_verbatim_then_the_contact_and_feedback_buttons(
    actions_home,
):
    dispatcher = CollectingDispatcher()
    events = ActionAnswer().run(dispatcher, tracker("粗大ごみを出したい"), {})
    entry = get_entry(open_db(actions_home.database_path), "sodai-gomi")
    first, second, third = payloads(dispatcher)
    assert first == {
        "decision": "answer",
        "text": entry.answer,
        "entry_id": "sodai-gomi",
        "revision": 1,
    }
    assert second["text"].startswith("お問い合わせ先：ごみ対策課（")
    assert third["text"] == "この回答で解決しましたか？"
    assert third["buttons"] == [
        {"title": "解決した", "payload": '/feedback_positive{"entry_id":"sodai-gomi"}'},
        {"title": "解決しなかった", "payload": '/feedback_negative{"entry_id":"sodai-gomi"}'},
    ]
    assert events == [
        SlotSet("last_entry_id", "sodai-gomi"),
        SlotSet("last_revision", 1),
        SlotSet("offered_entries", None),
        SlotSet("failed_turns", 0),
    ]


def test_clarify_offers_three_entries_and_none_of_these(actions_home):
    dispatcher = CollectingDispatcher()
    events = ActionAnswer().run(dispatcher, tracker("税金を払いたい"), {})
    (message,) = payloads(dispatcher)
    assert message["decision"] == "clarify"
    titles = [b["title"] for b in message["buttons"]]
    assert len(titles) == 4 and titles[-1] == "どれにも当てはまらない"
    first = message["candidates"][0]["entry_id"]
    assert message["buttons"][0]["payload"] == f'/choose_entry{{"entry_id":"{first}"}}'
    offered = [c["entry_id"] for c in message["candidates"][:3]]
    assert SlotSet("offered_entries", offered) in events


def test_choice_answers_the_chosen_entry(actions_home):
    dispatcher = CollectingDispatcher()
    chosen = tracker(
        '/choose_entry{"entry_id":"kokuho-premium-payment"}',
        intent="choose_entry",
        entities=[{"entity": "entry_id", "value": "kokuho-premium-payment"}],
    )
    ActionAnswerChoice().run(dispatcher, chosen, {})
    assert payloads(dispatcher)[0]["entry_id"] == "kokuho-premium-payment"


def test_a_first_unanswerable_question_asks_to_rephrase_without_a_ticket(actions_home):
    dispatcher = CollectingDispatcher()
    events = ActionAnswer().run(dispatcher, tracker("明日の天気は？"), {})
    (message,) = payloads(dispatcher)
    assert (message["decision"], message["text"]) == ("rephrase", REPHRASE)
    assert events == [SlotSet("failed_turns", 1)]
    assert find_open_ticket(open_db(actions_home.database_path), "resident-1") is None


def test_a_second_failed_turn_in_a_row_opens_a_ticket_with_transcript_and_candidates(
    actions_home,
):
    dispatcher = CollectingDispatcher()
    history = [{"event": "bot", "text": "こんにちは。", "timestamp": 0.5, "data": {}}]
    second = tracker(
        "明日の天気は？",
        history=history,
        slots={"failed_turns": 1},
        metadata={"page": "https://www.example.lg.jp/kurashi/"},
    )
    events = ActionAnswer().run(dispatcher, second, {})
    (message,) = payloads(dispatcher)
    assert message["decision"] == "handoff"
    assert SlotSet("failed_turns", 0) in events
    ticket = get_ticket(open_db(actions_home.database_path), message["handoff_id"])
    assert ticket.reason == "two_failed_turns"
    assert ticket.page == "https://www.example.lg.jp/kurashi/"
    assert ticket.session_id == "resident-1"
    assert [(t["role"], t["text"]) for t in ticket.transcript] == [
        ("assistant", "こんにちは。"),
        ("resident", "明日の天気は？"),
        ("assistant", message["text"]),
    ]
    assert ticket.transcript[1]["intent"] == "inquiry"
    assert len(ticket.candidates) == 5
    assert {"entry_id", "revision", "score"} <= set(ticket.candidates[0])


def test_request_for_a_person_opens_a_ticket(actions_home):
    dispatcher = CollectingDispatcher()
    ActionHandoff().run(dispatcher, tracker("人と話したい", intent="request_human"), {})
    (message,) = payloads(dispatcher)
    assert message["reason"] == "requested_human"
    assert get_ticket(open_db(actions_home.database_path), message["handoff_id"]).status == "open"


def test_past_the_addresses_ticket_limit_the_action_opens_none(actions_home):
    """The API counts tickets per address and tells Rasa in the message's metadata."""
    dispatcher = CollectingDispatcher()
    said = tracker("人と話したい", intent="request_human", metadata={"handoff_allowed": False})
    assert ActionHandoff().run(dispatcher, said, {}) == []
    (message,) = payloads(dispatcher)
    city = runtime.city()
    assert message == {
        "decision": "handoff_refused",
        "text": dialogue.handoff_limited_reply(city),
        "reason": "requested_human",
    }
    assert find_open_ticket(open_db(actions_home.database_path), "resident-1") is None


def test_none_of_these_puts_the_offered_entries_in_the_ticket(actions_home):
    offered = CollectingDispatcher()
    ActionAnswer().run(offered, tracker("税金を払いたい"), {})
    (clarify,) = payloads(offered)
    history = [
        {"event": "user", "text": "税金を払いたい", "timestamp": 1.0, "parse_data": {}},
        {"event": "bot", "timestamp": 1.1, "data": {"custom": {"madoguchi": clarify}}},
    ]
    dispatcher = CollectingDispatcher()
    ActionHandoff().run(
        dispatcher, tracker("/none_of_these", intent="none_of_these", history=history), {}
    )
    (message,) = payloads(dispatcher)
    ticket = get_ticket(open_db(actions_home.database_path), message["handoff_id"])
    assert ticket.reason == "none_of_these"
    assert ticket.candidates == clarify["candidates"] and ticket.candidates[0]["score"] > 0


def test_smalltalk_answers_a_greeting_with_the_response(actions_home):
    dispatcher = CollectingDispatcher()
    ActionSmallTalk().run(dispatcher, tracker("こんにちは", intent="greet"), {})
    assert dispatcher.messages[0]["response"] == "utter_greet"


def test_smalltalk_with_a_real_question_gets_the_answer(actions_home):
    dispatcher = CollectingDispatcher()
    ActionSmallTalk().run(dispatcher, tracker("こんにちは、住民票を取りたい", intent="greet"), {})
    assert payloads(dispatcher)[0]["entry_id"] == "juminhyo-copy"


@pytest.mark.parametrize(
    "previous, follow_up",
    [
        ("kokuho-premium-payment", "いつまでに払えばいい？"),
        ("kokuho-premium-payment", "コンビニでも払える？"),
        ("tennyu", "必要なものは？"),
    ],
)
def test_a_follow_up_is_answered_from_the_previous_entry(actions_home, previous, follow_up):
    alone = CollectingDispatcher()
    ActionAnswer().run(alone, tracker(follow_up), {})
    by_itself = payloads(alone)[0]
    # By itself it says too little to be answered with that entry.
    assert by_itself["decision"] != "answer" or by_itself.get("entry_id") != previous
    dispatcher = CollectingDispatcher()
    ActionAnswer().run(dispatcher, tracker(follow_up, slots={"last_entry_id": previous}), {})
    assert payloads(dispatcher)[0]["entry_id"] == previous


def test_a_new_topic_is_not_bent_towards_the_previous_entry(actions_home):
    dispatcher = CollectingDispatcher()
    after = tracker("粗大ごみを出したい", slots={"last_entry_id": "juminhyo-copy"})
    ActionAnswer().run(dispatcher, after, {})
    assert payloads(dispatcher)[0]["entry_id"] == "sodai-gomi"


@pytest.mark.parametrize(
    "text, offered, expected",
    [
        ("2番目", 3, 1),
        ("２つ目です", 3, 1),
        ("③", 3, 2),
        ("一番上のやつ", 3, 0),
        ("最初の", 3, 0),
        ("真ん中の", 3, 1),
        ("最後のをお願いします", 3, 2),
        ("最後の", 2, 1),
        ("上から2番目", 3, 1),
        ("三つ目", 3, 2),
        ("5番目", 3, None),
        ("住民票", 3, None),
        ("1番", 0, None),
    ],
)
def test_typed_choices_are_read_as_positions(text, offered, expected):
    assert ordinal(text, offered) == expected


def test_a_typed_choice_answers_the_offered_entry_at_that_position(actions_home):
    dispatcher = CollectingDispatcher()
    offered = ["juminzei-payment", "kotei-shisanzei", "keijidosha-zei"]
    chosen = tracker("2番目です", intent="choose_entry", slots={"offered_entries": offered})
    ActionAnswerChoice().run(dispatcher, chosen, {})
    assert payloads(dispatcher)[0]["entry_id"] == "kotei-shisanzei"


def test_a_typed_choice_with_nothing_offered_is_searched_as_a_question(actions_home):
    dispatcher = CollectingDispatcher()
    ActionAnswerChoice().run(dispatcher, tracker("2番目", intent="choose_entry"), {})
    assert payloads(dispatcher)[0]["decision"] in ("rephrase", "clarify")  # not a choice


def test_positive_feedback_is_recorded_against_the_answered_revision(actions_home):
    dispatcher = CollectingDispatcher()
    clicked = tracker(
        '/feedback_positive{"entry_id":"sodai-gomi"}',
        intent="feedback_positive",
        entities=[{"entity": "entry_id", "value": "sodai-gomi"}],
        slots={"last_entry_id": "sodai-gomi", "last_revision": 1},
    )
    ActionFeedback().run(dispatcher, clicked, {})
    assert payloads(dispatcher)[0]["decision"] == "feedback"
    db = open_db(actions_home.database_path)
    rows = list(db["feedback"].rows)
    assert [(r["entry_id"], r["revision"], r["helpful"], r["text"]) for r in rows] == [
        ("sodai-gomi", 1, 1, "")
    ]
    assert find_open_ticket(db, "resident-1") is None


def test_negative_feedback_is_recorded_and_hands_off_with_the_answer_in_the_ticket(
    actions_home,
):
    dispatcher = CollectingDispatcher()
    typed = tracker(
        "知りたいことと違う。電話は090-1234-5678です",
        intent="feedback_negative",
        slots={"last_entry_id": "sodai-gomi", "last_revision": 1},
    )
    ActionFeedback().run(dispatcher, typed, {})
    (message,) = payloads(dispatcher)
    assert message["decision"] == "handoff" and message["reason"] == "negative_feedback"
    db = open_db(actions_home.database_path)
    (row,) = db["feedback"].rows
    assert (row["entry_id"], row["helpful"]) == ("sodai-gomi", 0)
    assert row["text"] == "知りたいことと違う。電話は［電話番号］です"
    ticket = get_ticket(db, message["handoff_id"])
    assert ticket.candidates == [{"entry_id": "sodai-gomi", "revision": 1, "answered": True}]


def refuse_writes(db, table: str) -> None:
    """A real SQLite error on every insert into ``table`` (as a full disk would give)."""
    db.execute(
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    db.conn.commit()


def test_a_failing_action_apologises_and_hands_off_instead_of_saying_nothing(actions_home):
    db = open_db(actions_home.database_path)
    refuse_writes(db, "feedback")  # recording the feedback will fail
    dispatcher = CollectingDispatcher()
    rated = tracker(
        '/feedback_positive{"entry_id":"sodai-gomi"}',
        intent="feedback_positive",
        metadata={"request_id": "req-12345678"},
    )
    assert ActionFeedback().run(dispatcher, rated, {}) == []
    apology, handoff = payloads(dispatcher)
    assert apology["text"] == dialogue.APOLOGY
    assert handoff["decision"] == "handoff" and handoff["reason"] == "assistant_error"
    assert find_open_ticket(db, "resident-1").id == handoff["handoff_id"]


def test_when_even_the_ticket_fails_the_resident_is_told_to_try_again(actions_home):
    db = open_db(actions_home.database_path)
    refuse_writes(db, "feedback")
    refuse_writes(db, "tickets")
    dispatcher = CollectingDispatcher()
    rated = tracker('/feedback_positive{"entry_id":"sodai-gomi"}', intent="feedback_positive")
    ActionFeedback().run(dispatcher, rated, {})
    assert [m["text"] for m in payloads(dispatcher)] == [
        dialogue.APOLOGY,
        dialogue.TRY_AGAIN_LATER,
    ]


def said(text: str, intent: str = "inquiry") -> dict:
    parse = {"intent": {"name": intent, "confidence": 0.9}, "intent_ranking": []}
    return {"event": "user", "text": text, "timestamp": 1.0, "parse_data": parse}


def bot(text: str) -> dict:
    return {"event": "bot", "text": text, "timestamp": 1.0}


def suggestion_rows(settings) -> list[tuple]:
    db = open_db(settings.database_path)
    rows = db.query("SELECT entry_id, text, source, weight, session_id FROM suggestions")
    return [tuple(row.values()) for row in rows]


CHOSEN = "kotei-shisanzei"
PICKED = [
    said("税金を払いたい"),
    bot(dialogue.CLARIFY_PROMPT),
    said(f'/choose_entry{{"entry_id":"{CHOSEN}"}}', "choose_entry"),
    bot("固定資産税の納付は…"),
    bot(dialogue.FEEDBACK_PROMPT),
]


def feedback(helpful: bool, history: list[dict], entry_id: str = CHOSEN) -> Tracker:
    intent = "feedback_positive" if helpful else "feedback_negative"
    return tracker(
        f'/{intent}{{"entry_id":"{entry_id}"}}',
        intent=intent,
        entities=[{"entity": "entry_id", "value": entry_id}],
        history=history,
        slots={"last_entry_id": entry_id, "last_revision": 1},
    )


def test_solved_after_picking_a_choice_suggests_the_question_for_that_entry(actions_home):
    ActionFeedback().run(CollectingDispatcher(), feedback(True, PICKED), {})
    assert suggestion_rows(actions_home) == [
        (CHOSEN, "税金を払いたい", "resident", 1, "resident-1")
    ]


def test_a_typed_pick_counts_and_a_direct_answer_that_helped_teaches_nothing(actions_home):
    typed = [*PICKED[:2], said("2番目です", "choose_entry"), *PICKED[3:]]
    ActionFeedback().run(CollectingDispatcher(), feedback(True, typed), {})
    direct = [said("粗大ごみを出したい"), bot("粗大ごみは…"), bot(dialogue.FEEDBACK_PROMPT)]
    ActionFeedback().run(CollectingDispatcher(), feedback(True, direct, "sodai-gomi"), {})
    assert [row[:2] for row in suggestion_rows(actions_home)] == [(CHOSEN, "税金を払いたい")]


def test_not_solved_counts_against_the_question_and_the_entry(actions_home):
    direct = [said("ベッドを捨てたい 090-1234-5678"), bot("粗大ごみは…")]
    ActionFeedback().run(CollectingDispatcher(), feedback(False, direct, "sodai-gomi"), {})
    assert suggestion_rows(actions_home) == [
        ("sodai-gomi", "ベッドを捨てたい ［電話番号］", "resident", -1, "resident-1")
    ]
