"""Feedback on an answer: 「解決した」 is recorded; 「解決しなかった」 is recorded and the
conversation goes to a person, with the answer that did not help in the ticket; either
may suggest a phrasing. The rule is ``assistant.conversation.feedback_rule``; here it is
carried out through Rasa, with the tracker's transcript."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from assistant.conversation.actions import history, runtime
from assistant.conversation.feedback_rule import feedback_outcome


class ActionFeedback(runtime.Step):
    def name(self) -> str:
        return "action_feedback"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        with runtime.database() as db:
            outcome = feedback_outcome(
                db,
                session_id=tracker.sender_id,
                helpful=intent == "feedback_positive",
                entry_id=next(tracker.get_latest_entity_values("entry_id"), None),
                last_entry_id=tracker.get_slot("last_entry_id"),
                last_revision=tracker.get_slot("last_revision"),
                text=tracker.latest_message.get("text") or "",
                turns=history.transcript(tracker),
            )
        return runtime.carry_out(dispatcher, tracker, outcome)
