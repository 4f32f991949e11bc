"""The reply payload between the Rasa actions and the API, written and read only here.

An action sends each reply inside Rasa's custom payload, ``{"madoguchi": {...}}``, not
as Rasa text: Rasa's REST channel splits text at blank lines into separate messages;
carried in the payload, an entry's answer reaches the resident byte for byte as one
reply. The payload holds the reply's decision, text, buttons and fields (``entry_id``,
``revision``, ``handoff_id``, ``reason``, ``candidates``...).
"""

from __future__ import annotations

from typing import Any

from assistant.conversation.dialogue import Reply

KEY = "madoguchi"


def encode(reply: Reply) -> dict[str, Any]:
    """The custom payload carrying ``reply``. A reply whose text is a Rasa response
    (small talk) carries no text of its own, only its decision and fields."""
    payload: dict[str, Any] = {"decision": reply.decision}
    if reply.text:
        payload["text"] = reply.text
    payload |= reply.fields
    if reply.buttons:
        payload["buttons"] = list(reply.buttons)
    return {KEY: payload}


def decode(custom: object) -> Reply | None:
    """The reply in a custom payload (a REST output message's ``custom``, a bot event's
    ``data.custom``), or None if the payload is not one of ours."""
    if not isinstance(custom, dict) or not isinstance(custom.get(KEY), dict):
        return None
    fields = dict(custom[KEY])
    text = fields.pop("text", None) or ""
    buttons = tuple(fields.pop("buttons", None) or ())
    return Reply(text, fields.pop("decision", "smalltalk"), buttons, fields)
