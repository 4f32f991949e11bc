"""Greetings, thanks and other small talk, checked against the knowledge base first.

NLU is overconfident on text unlike its training data, so before treating a message as
small talk we ask the engine: if it has strong evidence that the message is a question
(「こんにちは、住民票を取りたい」), the resident gets the answer or the choices.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from assistant.conversation import replies
from assistant.conversation.actions import runtime
from assistant.conversation.actions.answer import act_on
from assistant.conversation.dialogue import Reply

RESPONSES = {
    "greet": "utter_greet",
    "goodbye": "utter_goodbye",
    "thanks": "utter_thanks",
    "bot_challenge": "utter_bot_challenge",
    "out_of_scope": "utter_out_of_scope",
    "affirm": "utter_ask_question",
    "deny": "utter_ask_question",
}


class ActionSmallTalk(runtime.Step):
    def name(self) -> str:
        return "action_smalltalk"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        decision = runtime.engine().search_in_context(
            tracker.latest_message.get("text") or "", tracker.get_slot("last_entry_id")
        )
        # Strong evidence of a question (「こんにちは、住民票を取りたい」): treat it as one.
        if (
            decision.kind != "handoff"
            and decision.confidence >= runtime.settings().answer_threshold
        ):
            return act_on(dispatcher, tracker, decision)
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        dispatcher.utter_message(
            response=RESPONSES.get(intent, "utter_ask_question"),
            json_message=replies.encode(Reply("", "smalltalk", fields={"intent": intent})),
        )
        return []
