"""Answering: the engine's decision becomes the entry's text, a choice, or a handoff."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.actions import runtime
from assistant.actions.handoff import hand_off
from assistant.engine import Decision
from knowledge.model import EntryNotFound

NONE_OF_THESE = "どれにも当てはまらない"
CLARIFY_PROMPT = "お問い合わせの内容に近いものを選んでください。"


def utter_entry(
    dispatcher: CollectingDispatcher, entry_id: str, decision: str, revision: int | None = None
) -> list[EventType]:
    """Send the entry's answer verbatim, then its department and contact."""
    entry = runtime.engine().entry(entry_id, revision)
    runtime.say(dispatcher, entry.answer, decision, entry_id=entry.id, revision=entry.revision)
    contact = runtime.city().contact_for(entry.department, entry.contact)
    if contact:
        runtime.say(dispatcher, f"お問い合わせ先：{contact}", decision)
    return [SlotSet("last_entry_id", entry.id)]


def utter_choices(dispatcher: CollectingDispatcher, decision: Decision) -> list[EventType]:
    buttons = [
        {"title": c.title, "payload": f'/choose_entry{{"entry_id":"{c.entry_id}"}}'}
        for c in decision.candidates[:3]
    ]
    buttons.append({"title": NONE_OF_THESE, "payload": "/none_of_these"})
    runtime.say(
        dispatcher,
        CLARIFY_PROMPT,
        "clarify",
        buttons=buttons,
        candidates=runtime.candidates_payload(decision),
    )
    return []


def act_on(
    dispatcher: CollectingDispatcher, tracker: Tracker, decision: Decision
) -> list[EventType]:
    """Answer, offer the choices, or hand off, as the engine decided."""
    if decision.kind == "answer":
        best = decision.candidates[0]
        return utter_entry(dispatcher, best.entry_id, "answer", best.revision)
    if decision.kind == "clarify":
        return utter_choices(dispatcher, decision)
    return hand_off(dispatcher, tracker, reason="no_confident_answer", decision=decision)


class ActionAnswer(Action):
    """Search the knowledge base for the resident's message and act on the decision."""

    def name(self) -> str:
        return "action_answer"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        decision = runtime.engine().search_in_context(
            tracker.latest_message.get("text") or "", tracker.get_slot("last_entry_id")
        )
        return act_on(dispatcher, tracker, decision)


class ActionAnswerChoice(Action):
    """The resident picked one of the clarification buttons."""

    def name(self) -> str:
        return "action_answer_choice"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        entry_id = next(tracker.get_latest_entity_values("entry_id"), None)
        try:
            return utter_entry(dispatcher, entry_id or "", "answer")
        except EntryNotFound:
            # A stale button (the entry was archived meanwhile): a person takes it from here.
            return hand_off(dispatcher, tracker, reason="choice_unavailable", decision=None)
