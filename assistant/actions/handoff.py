"""Handing the conversation to a person, with the whole context in a ticket."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from assistant.actions import runtime
from assistant.dialogue import handoff_limited_reply, handoff_reply
from knowledge.tickets import open_ticket
from knowledge.waiting import expected_wait


def transcript(tracker: Tracker) -> list[dict[str, Any]]:
    """The conversation so far, with what NLU understood of each resident message."""
    turns = []
    for event in tracker.events:
        if event.get("event") == "user":
            parse = event.get("parse_data") or {}
            turns.append(
                {
                    "role": "resident",
                    "text": event.get("text") or "",
                    "at": event.get("timestamp"),
                    "intent": (parse.get("intent") or {}).get("name"),
                    "intent_ranking": [
                        {"name": r.get("name"), "confidence": round(r.get("confidence", 0.0), 4)}
                        for r in (parse.get("intent_ranking") or [])[:5]
                    ],
                }
            )
        elif event.get("event") == "bot":
            custom = (event.get("data") or {}).get("custom") or {}
            text = event.get("text") or (custom.get("madoguchi") or {}).get("text")
            if text:
                turns.append({"role": "assistant", "text": text, "at": event.get("timestamp")})
    return turns


def opening_page(tracker: Tracker) -> str:
    """The city web page the chat was opened on, as the chat page reported it."""
    for event in tracker.events:
        if event.get("event") == "user":
            page = (event.get("metadata") or {}).get("page")
            if isinstance(page, str) and page:
                return page[:500]
    return ""


def hand_off(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    *,
    reason: str,
    candidates: list[dict[str, Any]] | None = None,
) -> list[EventType]:
    """Open (or add to) the session's ticket and tell the resident when a person answers.

    ``reason`` is one of requested_human, none_of_these, negative_feedback,
    two_failed_turns, choice_unavailable, assistant_error.
    """
    city = runtime.city()
    # The API knows the resident's address and counts their tickets: it says here
    # whether one more may be opened (api.routes.chat).
    if (tracker.latest_message.get("metadata") or {}).get("handoff_allowed") is False:
        runtime.say(dispatcher, handoff_limited_reply(city), "handoff_refused", reason=reason)
        return []
    now = city.now()
    with runtime.database() as db:
        reply = handoff_reply(city, now, expected_wait(db, city, now), reason)
        turns = transcript(tracker)
        turns.append({"role": "assistant", "text": reply, "at": now.timestamp()})
        ticket = open_ticket(
            db,
            session_id=tracker.sender_id,
            reason=reason,
            transcript=turns,
            candidates=candidates or [],
            channel=(tracker.get_latest_input_channel() or "web"),
            page=opening_page(tracker),
        )
    runtime.say(dispatcher, reply, "handoff", handoff_id=ticket.id, reason=reason)
    return []


def offered(tracker: Tracker) -> list[dict[str, Any]]:
    """The candidates (with scores) of the last choice the assistant offered."""
    for event in reversed(tracker.events):
        if event.get("event") != "bot":
            continue
        info = ((event.get("data") or {}).get("custom") or {}).get("madoguchi") or {}
        if info.get("decision") == "clarify":
            return list(info.get("candidates") or [])
    return []


class ActionHandoff(runtime.Step):
    """The resident asked for a person, or none of the offered entries fit."""

    def name(self) -> str:
        return "action_handoff"

    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "none_of_these":  # staff see what was offered and turned down
            return hand_off(
                dispatcher, tracker, reason="none_of_these", candidates=offered(tracker)
            )
        return hand_off(dispatcher, tracker, reason="requested_human")
