"""Custom actions run like functions: a named tracker, a CollectingDispatcher, exact output."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.actions import runtime
from assistant.actions.answer import ActionAnswer, ActionAnswerChoice
from assistant.actions.handoff import ActionHandoff
from assistant.actions.smalltalk import ActionSmallTalk
from knowledge.store import get_entry, open_db
from knowledge.tickets import get_ticket


@pytest.fixture
def actions_home(starter_settings, monkeypatch):
    monkeypatch.setenv("MADOGUCHI_HOME", str(starter_settings.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(starter_settings.encoder_path))
    for cached in (runtime.settings, runtime.engine):
        cached.cache_clear()
    yield starter_settings
    for cached in (runtime.settings, runtime.engine):
        cached.cache_clear()


def tracker(text: str, intent: str = "inquiry", entities=None, history=None, slots=None) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "intent_ranking": [{"name": intent, "confidence": 0.9}],
        "entities": entities or [],
    }
    events = list(history or []) + [
        {"event": "user", "text": text, "timestamp": 1.0, "parse_data": latest}
    ]
    return Tracker("resident-1", slots or {}, latest, events, False, None, {}, "rest")


def payloads(dispatcher: CollectingDispatcher) -> list[dict]:
    return [m["custom"]["madoguchi"] for m in dispatcher.messages]


def test_answer_sends_the_entry_text_verbatim_then_the_contact(actions_home):
    dispatcher = CollectingDispatcher()
    events = ActionAnswer().run(dispatcher, tracker("粗大ごみを出したい"), {})
    entry = get_entry(open_db(actions_home.database_path), "sodai-gomi")
    first, second = payloads(dispatcher)
    assert first == {
        "decision": "answer",
        "text": entry.answer,
        "entry_id": "sodai-gomi",
        "revision": 1,
    }
    assert second["text"].startswith("お問い合わせ先：ごみ対策課（")
    assert events == [SlotSet("last_entry_id", "sodai-gomi")]


def test_clarify_offers_three_entries_and_none_of_these(actions_home):
    dispatcher = CollectingDispatcher()
    ActionAnswer().run(dispatcher, tracker("税金を払いたい"), {})
    (message,) = payloads(dispatcher)
    assert message["decision"] == "clarify"
    titles = [b["title"] for b in message["buttons"]]
    assert len(titles) == 4 and titles[-1] == "どれにも当てはまらない"
    first = message["candidates"][0]["entry_id"]
    assert message["buttons"][0]["payload"] == f'/choose_entry{{"entry_id":"{first}"}}'


def test_choice_answers_the_chosen_entry(actions_home):
    dispatcher = CollectingDispatcher()
    chosen = tracker(
        '/choose_entry{"entry_id":"kokuho-premium-payment"}',
        intent="choose_entry",
        entities=[{"entity": "entry_id", "value": "kokuho-premium-payment"}],
    )
    ActionAnswerChoice().run(dispatcher, chosen, {})
    assert payloads(dispatcher)[0]["entry_id"] == "kokuho-premium-payment"


def test_unanswerable_question_opens_a_ticket_with_transcript_and_candidates(actions_home):
    dispatcher = CollectingDispatcher()
    history = [{"event": "bot", "text": "こんにちは。", "timestamp": 0.5, "data": {}}]
    ActionAnswer().run(dispatcher, tracker("明日の天気は？", history=history), {})
    (message,) = payloads(dispatcher)
    assert message["decision"] == "handoff"
    ticket = get_ticket(open_db(actions_home.database_path), message["handoff_id"])
    assert ticket.reason == "no_confident_answer"
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
    assert payloads(alone)[0]["decision"] != "answer"  # too little to go on by itself
    dispatcher = CollectingDispatcher()
    ActionAnswer().run(dispatcher, tracker(follow_up, slots={"last_entry_id": previous}), {})
    assert payloads(dispatcher)[0]["entry_id"] == previous


def test_a_new_topic_is_not_bent_towards_the_previous_entry(actions_home):
    dispatcher = CollectingDispatcher()
    after = tracker("粗大ごみを出したい", slots={"last_entry_id": "juminhyo-copy"})
    ActionAnswer().run(dispatcher, after, {})
    assert payloads(dispatcher)[0]["entry_id"] == "sodai-gomi"
