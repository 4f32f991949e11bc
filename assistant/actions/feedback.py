"""Feedback on an answer: 「解決した」 is recorded; 「解決しなかった」 is recorded and the
conversation goes to a person, with the answer that did not help in the ticket."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.actions import runtime
from assistant.actions.handoff import hand_off
from assistant.dialogue import THANKS_FOR_FEEDBACK
from knowledge.tickets import record_feedback


class ActionFeedback(runtime.Step):
    def name(self) -> str:
        return "action_feedback"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        helpful = intent == "feedback_positive"
        last = tracker.get_slot("last_entry_id")
        entry_id = next(tracker.get_latest_entity_values("entry_id"), None) or last
        revision = tracker.get_slot("last_revision") if entry_id == last else None
        revision = int(revision) if revision is not None else None
        text = tracker.latest_message.get("text") or ""
        with runtime.database() as db:
            record_feedback(
                db,
                session_id=tracker.sender_id,
                entry_id=entry_id,
                revision=revision,
                helpful=helpful,
                # A button click's text is its payload; keep only what was typed.
                text="" if text.startswith("/") else text,
            )
        if helpful:
            runtime.say(dispatcher, THANKS_FOR_FEEDBACK, "feedback", entry_id=entry_id)
            return []
        answered = [{"entry_id": entry_id, "revision": revision, "answered": True}]
        return [
            *hand_off(
                dispatcher,
                tracker,
                reason="negative_feedback",
                candidates=answered if entry_id else [],
            ),
            SlotSet("failed_turns", 0),
        ]
