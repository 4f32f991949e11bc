"""Answering: the engine's decision becomes the entry's text, a choice, or a handoff.

What is said for each decision is decided in ``assistant.conversation.dialogue`` (shared with the
API's degraded mode); here it is carried out through Rasa's dispatcher and slots.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from assistant.conversation import dialogue
from assistant.conversation.actions import runtime
from assistant.conversation.dialogue import ordinal
from assistant.retrieval.engine import Decision


def act_on(
    dispatcher: CollectingDispatcher, tracker: Tracker, decision: Decision
) -> list[EventType]:
    failed = int(tracker.get_slot("failed_turns") or 0)
    outcome = dialogue.respond(runtime.engine(), decision, failed)
    return runtime.carry_out(dispatcher, tracker, outcome)


class ActionAnswer(runtime.Step):
    """Search the knowledge base for the resident's message and act on the decision."""

    def name(self) -> str:
        return "action_answer"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        decision = runtime.engine().search_in_context(
            tracker.latest_message.get("text") or "", tracker.get_slot("last_entry_id")
        )
        return act_on(dispatcher, tracker, decision)


class ActionAnswerChoice(runtime.Step):
    """The resident picked one of the offered entries, by button or by typing 「2番目」."""

    def name(self) -> str:
        return "action_answer_choice"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        entry_id = next(tracker.get_latest_entity_values("entry_id"), None)
        if entry_id is None:
            offered = tracker.get_slot("offered_entries") or []
            position = ordinal(tracker.latest_message.get("text") or "", len(offered))
            if position is None:
                # Not a choice we can place (nothing offered, or 「5番目」 of three):
                # treat the message as a question.
                return ActionAnswer().act(dispatcher, tracker, domain)
            entry_id = offered[position]
        outcome = dialogue.chosen_outcome(runtime.engine(), entry_id)
        return runtime.carry_out(dispatcher, tracker, outcome)
