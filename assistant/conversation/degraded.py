"""Degraded mode: the chat keeps answering from the engine while Rasa is down or slow.

Without Rasa there is no NLU, so this mode understands only what needs none: the
buttons' payloads (a choice, feedback, 「どれにも当てはまらない」), a typed choice
(「2番目」) right after choices were offered, and an explicit request for a person.
Everything else is a question for the engine, and what is said for its decision comes
from ``dialogue``, the same code the Rasa actions use: an inquiry gets the same entry
and byte-identical text on either path. Tickets are opened by ``handoffs`` and feedback
is recorded by ``feedback_rule``, as on the Rasa path.

What a conversation remembers (the last entry, the offered choices, failed turns and
the turns so far, for a ticket) is kept in this process's memory for the most recent
sessions: a degraded conversation is short-lived, and Rasa takes over again when it
is back.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from assistant.conversation import dialogue, handoffs
from assistant.conversation.feedback_rule import feedback_outcome
from assistant.retrieval.engine import Engine
from knowledge.inquiries import PERSON_REQUEST

_PAYLOAD = re.compile(r"^/(\w+)(\{.*\})?$", re.DOTALL)
MAX_TURNS_KEPT = 50


@dataclass
class Memory:
    last_entry_id: str | None = None
    last_revision: int | None = None
    offered_entries: list[str] | None = None
    offered_candidates: list[dict[str, Any]] = field(default_factory=list)  # with scores
    failed_turns: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)

    def remember(self, updates: dict[str, Any]) -> None:
        for name, value in updates.items():
            setattr(self, name, value)


@dataclass(frozen=True)
class Turn:
    decision: dialogue.ReplyDecision
    replies: tuple[dialogue.Reply, ...]
    handoff_id: int | None = None


def parse_payload(message: str) -> tuple[str, dict[str, Any]] | None:
    """``/choose_entry{"entry_id":"x"}`` -> ("choose_entry", {"entry_id": "x"})."""
    match = _PAYLOAD.match(message.strip())
    if not match:
        return None
    try:
        entities = json.loads(match.group(2)) if match.group(2) else {}
    except ValueError:
        entities = {}
    return match.group(1), entities if isinstance(entities, dict) else {}


class DegradedChat:
    def __init__(self, engine: Engine, capacity: int = 10_000):
        self.engine = engine
        self.capacity = capacity
        self._sessions: OrderedDict[str, Memory] = OrderedDict()
        self._lock = threading.Lock()

    def _memory(self, session_id: str) -> Memory:
        with self._lock:
            memory = self._sessions.pop(session_id, None) or Memory()
            self._sessions[session_id] = memory  # most recent last
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
            return memory

    def respond(
        self,
        db: sqlite_utils.Database,
        session_id: str,
        message: str,
        page: str | None,
        handoff_allowed: bool = True,
    ) -> Turn:
        """One resident message, answered without Rasa. ``message`` is already masked;
        without ``handoff_allowed`` (the address opened too many tickets lately) a
        handoff is refused politely and no ticket is opened."""
        memory = self._memory(session_id)
        now = self.engine.city.now()
        memory.turns.append({"role": "resident", "text": message, "at": now.timestamp()})
        outcome = self._outcome(db, session_id, memory, message)
        replies = list(outcome.replies)
        handoff_id = None
        if outcome.handoff:
            said = [*memory.turns, *({"role": "assistant", "text": r.text} for r in replies)]
            reply = handoffs.hand_off(
                db,
                self.engine.city,
                now,
                outcome.handoff,
                session_id=session_id,
                transcript=said,
                allowed=handoff_allowed,
                page=page or "",
            )
            replies.append(reply)
            handoff_id = reply.fields.get("handoff_id")
        memory.remember(outcome.remember)
        for reply in replies:
            if reply.decision == "clarify":
                memory.offered_candidates = list(reply.fields.get("candidates") or [])
        memory.turns += [
            {"role": "assistant", "text": r.text, "at": now.timestamp()} for r in replies
        ]
        del memory.turns[:-MAX_TURNS_KEPT]
        decision = "handoff" if handoff_id else (replies[0].decision if replies else "handoff")
        return Turn(decision, tuple(replies), handoff_id)

    def _outcome(
        self, db: sqlite_utils.Database, session_id: str, memory: Memory, message: str
    ) -> dialogue.Outcome:
        payload = parse_payload(message)
        if payload is not None:
            intent, entities = payload
            entry_id = (
                entities.get("entry_id") if isinstance(entities.get("entry_id"), str) else None
            )
            if intent == "choose_entry" and entry_id:
                return dialogue.chosen_outcome(self.engine, entry_id)
            if intent in ("feedback_positive", "feedback_negative"):
                return feedback_outcome(
                    db,
                    session_id=session_id,
                    helpful=intent == "feedback_positive",
                    entry_id=entry_id,
                    last_entry_id=memory.last_entry_id,
                    last_revision=memory.last_revision,
                    turns=memory.turns,
                )
            if intent == "none_of_these":
                request = dialogue.HandoffRequest("none_of_these", memory.offered_candidates)
                return dialogue.Outcome(handoff=request)
            if intent == "request_human":
                return dialogue.Outcome(handoff=dialogue.HandoffRequest("requested_human"))
            message = ""  # another intent's payload says nothing to search for
        if PERSON_REQUEST.search(message):
            return dialogue.Outcome(handoff=dialogue.HandoffRequest("requested_human"))
        offered = memory.offered_entries or []
        if offered:
            position = dialogue.typed_choice(message, len(offered))
            if position is not None:
                return dialogue.chosen_outcome(self.engine, offered[position])
        decision = self.engine.search_in_context(message, memory.last_entry_id)
        return dialogue.respond(self.engine, decision, memory.failed_turns)
