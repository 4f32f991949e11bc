"""Greetings, thanks and other small talk, checked against the knowledge base first.

NLU is overconfident on text unlike its training data, so before treating a message as
small talk we ask the engine: if it is confident the message is a question it can
answer (「こんにちは、住民票を取りたい」), the resident gets the answer.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.actions import runtime
from assistant.actions.answer import answer_if_confident

RESPONSES = {
    "greet": "utter_greet",
    "goodbye": "utter_goodbye",
    "thanks": "utter_thanks",
    "bot_challenge": "utter_bot_challenge",
    "out_of_scope": "utter_out_of_scope",
    "affirm": "utter_ask_question",
    "deny": "utter_ask_question",
}


class ActionSmallTalk(Action):
    def name(self) -> str:
        return "action_smalltalk"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        decision = answer_if_confident(dispatcher, tracker.latest_message.get("text") or "")
        if decision.kind == "answer":
            return [SlotSet("last_entry_id", decision.candidates[0].entry_id)]
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        dispatcher.utter_message(
            response=RESPONSES.get(intent, "utter_ask_question"),
            json_message=runtime.metadata("smalltalk", intent=intent),
        )
        return []
