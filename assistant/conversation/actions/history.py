"""What the tracker's events say of the conversation so far: its transcript for a
ticket, the page the chat was opened on, and the choices last offered."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker

from assistant.conversation import replies


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
            reply = replies.decode((event.get("data") or {}).get("custom"))
            text = event.get("text") or (reply.text if reply else None)
            if text:
                turns.append({"role": "assistant", "text": text, "at": event.get("timestamp")})
    return turns


def opening_page(tracker: Tracker) -> str:
    """The city web page the chat was opened on, as the chat page reported it."""
    for event in tracker.events:
        if event.get("event") == "user":
            page = (event.get("metadata") or {}).get("page")
            if isinstance(page, str) and page:
                return page
    return ""


def offered(tracker: Tracker) -> list[dict[str, Any]]:
    """The candidates (with scores) of the last choice the assistant offered."""
    for event in reversed(tracker.events):
        if event.get("event") != "bot":
            continue
        reply = replies.decode((event.get("data") or {}).get("custom"))
        if reply is not None and reply.decision == "clarify":
            return list(reply.fields.get("candidates") or [])
    return []
