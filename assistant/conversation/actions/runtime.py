"""What every action shares: one engine, the knowledge database and the city profile,
loaded once per action-server process from the environment's settings; saying a reply,
carrying out a dialogue outcome and handing off through Rasa; and ``Step``, the base
of every action."""

from __future__ import annotations

import logging
import os
from abc import ABCMeta, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlite_utils
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.conversation import dialogue, handoffs, replies
from assistant.conversation.actions.history import opening_page, transcript
from assistant.operations import logs
from assistant.operations.config import Settings
from assistant.operations.keys import conversation_ref, load_secret
from assistant.retrieval.engine import Engine
from knowledge.city import CityProfile
from knowledge.store import open_db

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env(os.environ)


@lru_cache(maxsize=1)
def secret() -> bytes:
    return load_secret(settings().secret_path)


@lru_cache(maxsize=1)
def engine() -> Engine:
    return Engine.load(settings())


@contextmanager
def database() -> Iterator[sqlite_utils.Database]:
    """A connection for one action's writes (SQLite connections are not shared across
    the action server's threads), closed when the action is done with it."""
    db = open_db(settings().database_path)
    try:
        yield db
    finally:
        db.close()


def city() -> CityProfile:
    """The engine's city profile: answers and contacts come from one loaded copy."""
    return engine().city


def say(dispatcher: CollectingDispatcher, reply: dialogue.Reply) -> None:
    """Send the reply inside our custom payload (``conversation.replies``), not as Rasa
    text."""
    dispatcher.utter_message(json_message=replies.encode(reply))


def hand_off(
    dispatcher: CollectingDispatcher, tracker: Tracker, request: dialogue.HandoffRequest
) -> list[EventType]:
    """Open (or add to) the session's ticket with the tracker's transcript and tell the
    resident when a person answers (``assistant.conversation.handoffs``)."""
    profile = city()
    # The API knows the resident's address and counts their tickets: it says here
    # whether one more may be opened (api.routes.chat).
    allowed = (tracker.latest_message.get("metadata") or {}).get("handoff_allowed") is not False
    with database() as db:
        reply = handoffs.hand_off(
            db,
            profile,
            profile.now(),
            request,
            session_id=tracker.sender_id,
            transcript=transcript(tracker),
            allowed=allowed,
            channel=(tracker.get_latest_input_channel() or "web"),
            page=opening_page(tracker),
        )
    say(dispatcher, reply)
    return []


def carry_out(
    dispatcher: CollectingDispatcher, tracker: Tracker, outcome: dialogue.Outcome
) -> list[EventType]:
    """Say the outcome's replies, hand off if it asks for a person, set its slots."""
    for reply in outcome.replies:
        say(dispatcher, reply)
    events = hand_off(dispatcher, tracker, outcome.handoff) if outcome.handoff else []
    return events + [SlotSet(name, value) for name, value in outcome.remember.items()]


class Step(Action, metaclass=ABCMeta):
    """An action that never leaves the resident without a reply.

    It carries the API's request id into this process's logs, and if the work fails
    (a database error, a bug), the resident gets an apology and the conversation goes
    to a person with whatever was said so far. Subclasses implement ``act``.
    """

    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]: ...

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        metadata = tracker.latest_message.get("metadata") or {}
        with logs.request_context(metadata.get("request_id")):
            intent = (tracker.latest_message.get("intent") or {}).get("name")
            # A keyed hash names the conversation: its id would let a log reader see the
            # staff messages and write to the ticket.
            conversation = conversation_ref(secret(), tracker.sender_id or "")
            log.info("%s (intent %s)", self.name(), intent, extra={"conversation": conversation})
            try:
                return self.act(dispatcher, tracker, domain)
            except Exception:
                log.exception("action %s failed; apologising and handing off", self.name())
                dispatcher.messages.clear()  # nothing half-said
                return self.apologise(dispatcher, tracker)

    def apologise(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        request = dialogue.HandoffRequest("assistant_error")
        fields = {"reason": request.reason}
        say(dispatcher, dialogue.Reply(dialogue.APOLOGY, "handoff", fields=fields))
        try:
            return hand_off(dispatcher, tracker, request)
        except Exception:
            log.exception("could not open a ticket after action %s failed", self.name())
            say(dispatcher, dialogue.Reply(dialogue.TRY_AGAIN_LATER, "handoff", fields=fields))
            return []
