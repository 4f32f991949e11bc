"""Answering: the engine's decision becomes the entry's text, a choice, or a handoff.

A turn the engine cannot answer asks the resident to rephrase; the second such turn in a
row hands the conversation to a person (slot ``failed_turns``).
"""

from __future__ import annotations

import re
import unicodedata
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
FEEDBACK_PROMPT = "この回答で解決しましたか？"
SOLVED, NOT_SOLVED = "解決した", "解決しなかった"
REPHRASE = (
    "申し訳ありません。お尋ねの内容に合うご案内が見つかりませんでした。"
    "別の言葉で、もう一度入力してください。"
    "（例：「国民健康保険料の支払い方法」「粗大ごみの出し方」）"
)
FAILED_TURNS_BEFORE_HANDOFF = 2


def feedback_buttons(entry_id: str) -> list[dict[str, str]]:
    entity = f'{{"entry_id":"{entry_id}"}}'
    return [
        {"title": SOLVED, "payload": f"/feedback_positive{entity}"},
        {"title": NOT_SOLVED, "payload": f"/feedback_negative{entity}"},
    ]


def utter_entry(
    dispatcher: CollectingDispatcher, entry_id: str, decision: str, revision: int | None = None
) -> list[EventType]:
    """Send the entry's answer verbatim, its department and contact, and ask for feedback."""
    entry = runtime.engine().entry(entry_id, revision)
    runtime.say(dispatcher, entry.answer, decision, entry_id=entry.id, revision=entry.revision)
    contact = runtime.city().contact_for(entry.department, entry.contact)
    if contact:
        runtime.say(dispatcher, f"お問い合わせ先：{contact}", decision)
    runtime.say(dispatcher, FEEDBACK_PROMPT, decision, buttons=feedback_buttons(entry.id))
    return [
        SlotSet("last_entry_id", entry.id),
        SlotSet("last_revision", entry.revision),
        SlotSet("offered_entries", None),
        SlotSet("failed_turns", 0),
    ]


def utter_choices(dispatcher: CollectingDispatcher, decision: Decision) -> list[EventType]:
    offered = decision.candidates[:3]
    buttons = [
        {"title": c.title, "payload": f'/choose_entry{{"entry_id":"{c.entry_id}"}}'}
        for c in offered
    ]
    buttons.append({"title": NONE_OF_THESE, "payload": "/none_of_these"})
    runtime.say(
        dispatcher,
        CLARIFY_PROMPT,
        "clarify",
        buttons=buttons,
        candidates=runtime.candidates_payload(decision),
    )
    return [SlotSet("offered_entries", [c.entry_id for c in offered]), SlotSet("failed_turns", 0)]


def act_on(
    dispatcher: CollectingDispatcher, tracker: Tracker, decision: Decision
) -> list[EventType]:
    """Answer, offer the choices, ask to rephrase, or hand off, as the engine decided."""
    if decision.kind == "answer":
        best = decision.candidates[0]
        return utter_entry(dispatcher, best.entry_id, "answer", best.revision)
    if decision.kind == "clarify":
        return utter_choices(dispatcher, decision)
    failed = int(tracker.get_slot("failed_turns") or 0) + 1
    if failed >= FAILED_TURNS_BEFORE_HANDOFF:
        return [
            *hand_off(dispatcher, tracker, reason="two_failed_turns", decision=decision),
            SlotSet("failed_turns", 0),
        ]
    runtime.say(dispatcher, REPHRASE, "rephrase", candidates=runtime.candidates_payload(decision))
    return [SlotSet("failed_turns", failed)]


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


_LAST = re.compile(r"最後|一番下|いちばん下|一番した|さいご")
_MIDDLE = re.compile(r"真ん中|まんなか|中央")
_FIRST = re.compile(r"最初|一番上|いちばん上|はじめ|さいしょ|トップ")
_DIGIT = re.compile(r"([1-9])")
_KANJI = re.compile(r"([一二三四五])(?:番|つ|個)")
_KANJI_VALUES = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def ordinal(text: str, offered: int) -> int | None:
    """The 0-based position a typed choice refers to (「2番目」「最後の」「③」), if any."""
    text = unicodedata.normalize("NFKC", text)  # ③ -> 3, full-width digits -> ASCII
    if _LAST.search(text):
        return offered - 1 if offered else None
    if match := _DIGIT.search(text):
        position = int(match.group(1))
    elif match := _KANJI.search(text):
        position = _KANJI_VALUES[match.group(1)]
    elif _MIDDLE.search(text):
        position = 2
    elif _FIRST.search(text):
        position = 1
    else:
        return None
    return position - 1 if 1 <= position <= offered else None


class ActionAnswerChoice(Action):
    """The resident picked one of the offered entries, by button or by typing 「2番目」."""

    def name(self) -> str:
        return "action_answer_choice"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        entry_id = next(tracker.get_latest_entity_values("entry_id"), None)
        if entry_id is None:
            offered = tracker.get_slot("offered_entries") or []
            position = ordinal(tracker.latest_message.get("text") or "", len(offered))
            if position is None:
                # Not a choice we can place (nothing offered, or 「5番目」 of three):
                # treat the message as a question.
                return ActionAnswer().run(dispatcher, tracker, domain)
            entry_id = offered[position]
        try:
            return utter_entry(dispatcher, entry_id, "answer")
        except EntryNotFound:
            # A stale button (the entry was archived meanwhile): a person takes it from here.
            return hand_off(dispatcher, tracker, reason="choice_unavailable", decision=None)
