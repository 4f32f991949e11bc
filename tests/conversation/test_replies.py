"""The reply payload between the actions and the API (assistant.conversation.replies), and the
actions' modules importable in any order (no import cycle)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.conversation import replies
from assistant.conversation.dialogue import Reply


def test_a_reply_reads_back_as_it_was_written():
    buttons = ({"title": "解決した", "payload": "/feedback_positive"},)
    reply = Reply("回答\n\n二段落目", "answer", buttons, {"entry_id": "x", "revision": 2})
    payload = replies.encode(reply)
    assert payload == {
        "madoguchi": {
            "decision": "answer",
            "text": "回答\n\n二段落目",
            "entry_id": "x",
            "revision": 2,
            "buttons": list(buttons),
        }
    }
    assert replies.decode(payload) == reply


def test_small_talk_carries_only_its_decision_and_other_payloads_are_not_ours():
    assert replies.encode(Reply("", "smalltalk", fields={"intent": "greet"})) == {
        "madoguchi": {"decision": "smalltalk", "intent": "greet"}
    }
    assert replies.decode({"other": {}}) is None
    assert replies.decode(None) is None


@pytest.mark.parametrize(
    "first, second",
    [
        ("assistant.conversation.actions.handoff", "assistant.conversation.actions.runtime"),
        ("assistant.conversation.actions.runtime", "assistant.conversation.actions.handoff"),
    ],
)
def test_the_actions_import_in_either_order(first, second):
    code = f"import {first}, {second}"
    subprocess.run([sys.executable, "-c", code], check=True)
