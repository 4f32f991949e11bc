"""Answering: the engine's decision becomes the entry's text, a choice, or a handoff.

What is said for each decision is decided in ``assistant.dialogue`` (shared with the
API's degraded mode); here it is carried out through Rasa's dispatcher and slots.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant import dialogue
from assistant.actions import runtime
from assistant.actions.handoff import hand_off
from assistant.dialogue import ordinal
from assistant.engine import Decision
from knowledge.model import EntryNotFound


def carry_out(
    dispatcher: CollectingDispatcher, tracker: Tracker, outcome: dialogue.Outcome
) -> list[EventType]:
    """Say the outcome's replies, hand off if it asks for a person, set its slots."""
    for reply in outcome.replies:
        runtime.say_reply(dispatcher, reply)
    events: list[EventType] = []
    if outcome.handoff:
        events += hand_off(
            dispatcher,
            tracker,
            reason=outcome.handoff.reason,
            candidates=outcome.handoff.candidates,
        )
    return events + [SlotSet(name, value) for name, value in outcome.remember.items()]


def act_on(
    dispatcher: CollectingDispatcher, tracker: Tracker, decision: Decision
) -> list[EventType]:
    failed = int(tracker.get_slot("failed_turns") or 0)
    return carry_out(dispatcher, tracker, dialogue.respond(runtime.engine(), decision, failed))


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
        try:
            outcome = dialogue.entry_outcome(runtime.engine(), entry_id, "answer")
        except EntryNotFound:
            # A stale button (the entry was archived meanwhile): a person takes it from here.
            return hand_off(dispatcher, tracker, reason="choice_unavailable")
        return carry_out(dispatcher, tracker, outcome)
