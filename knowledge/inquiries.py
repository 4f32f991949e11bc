"""Which resident message in a handoff is the question that failed.

Staff cards, the 「ナレッジとして提案」 prefill and the editors' unanswered-question queue
all need the question the assistant could not answer: the resident's last real inquiry
before the handoff. Requests for a person (「人と話したい」), greetings, thanks, button
presses (``/payload`` messages) and junk markup are not questions; the last message before
them that is one is what the resident wanted to know.

Turns come from the Rasa tracker (with the intent NLU read) or from the degraded chat
(without one), so each kind is also recognised from the text alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from knowledge.model import has_html

# Intents of resident turns that do not ask about the city's business.
NOT_QUESTIONS = frozenset(
    {
        "request_human",
        "none_of_these",
        "feedback_positive",
        "feedback_negative",
        "choose_entry",
        "affirm",
        "deny",
        "greet",
        "thanks",
        "goodbye",
        "bot_challenge",
    }
)
# A request for a person, said plainly (「職員と話したい」「担当の方に代わってください」).
# A question about staff (「職員採用試験の日程は」) is not one.
PERSON_REQUEST = re.compile(
    r"(職員|担当者|担当|オペレーター|人間|係の人|窓口の人)(の方|さん)?(と|に|へ)"
    r"(話|代わ|かわ|替わ|つな|繋|相談)|人と話|電話で話"
)
# A message that is only a greeting, thanks or apology (the degraded chat has no NLU).
_SMALL_TALK = re.compile(
    r"^(こんにちは|こんにちわ|こんばんは|おはよう(ございます)?|はじめまして|もしもし|"
    r"ありがとう(ございます|ございました)?|どうも(ありがとう)?|よろしく(お願いします)?|"
    r"すみません|さようなら|はい|いいえ|了解(です|しました)?|わかりました)"
    r"[\s!?！？。、．，～ー〜w笑]*$"
)
# Letters of any script (kana, kanji, Latin): a message without two of them says nothing.
_LETTER = re.compile(r"[^\W\d_]")


def is_inquiry(turn: dict[str, Any]) -> bool:
    """Whether a resident turn asks something (not a greeting, button, request for a
    person or markup)."""
    text = unicodedata.normalize("NFKC", str(turn.get("text") or "")).strip()
    if turn.get("role") != "resident" or not text or text.startswith("/"):
        return False
    if turn.get("intent") in NOT_QUESTIONS:
        return False
    if PERSON_REQUEST.search(text) or _SMALL_TALK.match(text):
        return False
    return not has_html(text) and len(_LETTER.findall(text)) >= 2


def failed_question(turns: Iterable[dict[str, Any]]) -> str:
    """The last real inquiry among ``turns`` (the conversation up to the handoff), or ""
    when the resident asked nothing (only greetings, say)."""
    asked = [str(turn["text"]).strip() for turn in turns if is_inquiry(turn)]
    return asked[-1] if asked else ""


def before_handoff(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a stored ticket's transcript was at the handoff: up to the assistant's last
    turn (its handoff message). While a ticket is open the assistant stays silent, so
    every later turn is the resident or staff writing after the handoff."""
    last = max((i for i, turn in enumerate(turns) if turn.get("role") == "assistant"), default=-1)
    return turns[: last + 1] if last >= 0 else turns
