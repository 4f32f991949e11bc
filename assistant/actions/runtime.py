"""What every action shares: one engine, the knowledge database and the city profile,
loaded once per action-server process from the environment's settings."""

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
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from assistant import dialogue, logs
from assistant.config import Settings
from assistant.engine import Engine
from assistant.keys import conversation_ref, load_secret
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


def metadata(decision: str, **fields: Any) -> dict[str, Any]:
    """The custom payload the API reads to fill ``decision``, ``entry_id`` and so on."""
    return {"madoguchi": {"decision": decision, **fields}}


def say(
    dispatcher: CollectingDispatcher,
    text: str,
    decision: str,
    buttons: list[dict[str, str]] | None = None,
    **fields: Any,
) -> None:
    """Send ``text`` inside our custom payload rather than as Rasa text.

    Rasa's REST channel splits text at blank lines into separate messages; carried in
    the payload, an entry's answer reaches the resident byte for byte as one reply.
    """
    payload = {"text": text, **fields}
    if buttons:
        payload["buttons"] = buttons
    dispatcher.utter_message(json_message=metadata(decision, **payload))


def say_reply(dispatcher: CollectingDispatcher, reply: dialogue.Reply) -> None:
    say(dispatcher, reply.text, reply.decision, list(reply.buttons) or None, **reply.fields)


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
        from assistant.actions.handoff import hand_off  # handoff imports this module

        say(dispatcher, dialogue.APOLOGY, "handoff", reason="assistant_error")
        try:
            return hand_off(dispatcher, tracker, reason="assistant_error")
        except Exception:
            log.exception("could not open a ticket after action %s failed", self.name())
            say(dispatcher, dialogue.TRY_AGAIN_LATER, "handoff", reason="assistant_error")
            return []
