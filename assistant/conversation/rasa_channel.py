"""Rasa's REST channel, answering only the API: the Madoguchi API is the only client of
``/webhooks/rest/webhook``, and shows the internal token (``assistant.operations.keys``).

Rasa's ``--auth-token`` guards only its HTTP API (which Madoguchi does not enable), not
the channels, and the REST channel reads any body as JSON. So a message must carry
``X-Madoguchi-Token`` (401 otherwise) and be ``application/json`` (415 otherwise).

Imported by the Rasa server (``credentials.yml`` names it, written by the launcher), so
it imports only Rasa, the standard library and ``assistant.operations.keys``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request

from assistant.operations.keys import internal_refusal


class GuardedRestInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"  # the same webhook path and input channel name as Rasa's own

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> GuardedRestInput:
        token = str((credentials or {}).get("token") or "")
        if len(token) < 32:
            raise RasaException("the REST channel needs a token of 32 characters or more")
        return cls(token)

    def __init__(self, token: str) -> None:
        self.token = token

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)

        @webhook.middleware("request")
        async def check(request: Request):
            if request.method in ("GET", "HEAD"):  # the channel's health check
                return None
            refused = internal_refusal(request.headers, request.method, self.token)
            return response.json({"error": refused[1]}, refused[0]) if refused else None

        return webhook
