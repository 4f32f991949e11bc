"""The resident asks for a person, or none of the offered entries fit: a ticket with the
whole context (``runtime.hand_off``, over ``assistant.conversation.handoffs``)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from assistant.conversation.actions import runtime
from assistant.conversation.actions.history import offered
from assistant.conversation.dialogue import HandoffRequest


class ActionHandoff(runtime.Step):
    """The resident asked for a person, or none of the offered entries fit."""

    def name(self) -> str:
        return "action_handoff"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "none_of_these":  # staff see what was offered and turned down
            request = HandoffRequest("none_of_these", offered(tracker))
        else:
            request = HandoffRequest("requested_human")
        return runtime.hand_off(dispatcher, tracker, request)
