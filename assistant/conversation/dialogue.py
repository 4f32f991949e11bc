"""What the assistant says for a decision, independent of who carries it to the resident.

The Rasa actions (``conversation.actions``) and the degraded chat
(``conversation.degraded``, used by the API while Rasa is down) both turn the engine's
decision into replies here, so a question gets the same entry and byte-identical text on
either path.

A turn's result is an :class:`Outcome`: the replies, what the conversation should
remember (named like the Rasa slots), and whether a person must take over.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from assistant.retrieval.engine import Decision, Engine
from assistant.retrieval.ranking import DecisionKind
from knowledge.city import CityProfile, japanese_moment
from knowledge.model import EntryNotFound
from knowledge.waiting import Wait, japanese_duration

NONE_OF_THESE = "どれにも当てはまらない"
CLARIFY_PROMPT = "お問い合わせの内容に近いものを選んでください。"
FEEDBACK_PROMPT = "この回答で解決しましたか？"
SOLVED, NOT_SOLVED = "解決した", "解決しなかった"
REPHRASE = (
    "申し訳ありません。お尋ねの内容に合うご案内が見つかりませんでした。"
    "別の言葉で、もう一度入力してください。"
    "（例：「国民健康保険料の支払い方法」「粗大ごみの出し方」）"
)
THANKS_FOR_FEEDBACK = "お役に立ててよかったです。ほかにご質問があれば入力してください。"
APOLOGY = "申し訳ありません。システムの不具合のため、お答えを用意できませんでした。"
TRY_AGAIN_LATER = "しばらくしてから、もう一度お試しください。"
HANDOFF_OPEN = (
    "担当の職員がこのチャットでお返事します。お返事まで{wait}ほどかかる見込みです{queue}。"
)
HANDOFF_QUEUE = "（いま{waiting}件のお問い合わせが先にお待ちです）"
HANDOFF_AFTER_CLOSING = "本日の受付時間内にお返事できないときは、{next}以降にお返事します。"
HANDOFF_CLOSED = (
    "ただいま受付時間外です。担当の職員が{next}以降に、このチャットでお返事します"
    "（受付：{hours}。{closed}はお休みです）。"
)
HANDOFF_KEPT = (
    "この画面を閉じても会話は残ります。あとで同じ端末のブラウザでこのページを開くと、"
    "お返事をご確認いただけます。"
)
# Why the assistant hands over, when the resident did not ask for a person themselves.
HANDOFF_REASONS: dict[HandoffReason, str] = {
    "two_failed_turns": (
        "2回続けて、お尋ねの内容に合うご案内を見つけられませんでした。職員におつなぎします。"
    ),
    "none_of_these": "ご案内した中に当てはまるものがなかったため、職員におつなぎします。",
    "negative_feedback": "ご案内で解決しなかったため、職員におつなぎします。",
}
HANDOFF_LIMITED = (
    "申し訳ありません。短い時間に多くのお問い合わせをいただいたため、ただいまこのチャットから"
    "職員におつなぎできません。しばらく時間をおいてからもう一度お試しいただくか、"
    "{phone}（{hours}）までお電話ください。"
)
FAILED_TURNS_BEFORE_HANDOFF = 2

# What a turn was, as a reply (and the API's ``decision``) says: the engine's decision,
# or what the dialogue made of the resident's message.
ReplyDecision = Literal[DecisionKind, "rephrase", "feedback", "smalltalk", "handoff_refused"]
# Why a conversation goes to a person (a ticket's ``reason``).
HandoffReason = Literal[
    "requested_human",
    "none_of_these",
    "negative_feedback",
    "two_failed_turns",
    "choice_unavailable",
    "assistant_error",
]


@dataclass(frozen=True)
class Reply:
    """One message to the resident; ``fields`` go into the API's reply metadata."""

    text: str
    decision: ReplyDecision
    buttons: tuple[dict[str, str], ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandoffRequest:
    reason: HandoffReason
    candidates: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    replies: tuple[Reply, ...] = ()
    # Slot name -> new value (last_entry_id, last_revision, offered_entries, failed_turns).
    remember: dict[str, Any] = field(default_factory=dict)
    handoff: HandoffRequest | None = None


def candidates_payload(decision: Decision | None) -> list[dict[str, Any]]:
    if decision is None:
        return []
    return [
        {
            "entry_id": c.entry_id,
            "revision": c.revision,
            "title": c.title,
            "score": c.score,
            "dense": c.dense,
            "coverage": c.coverage,
        }
        for c in decision.candidates
    ]


def feedback_buttons(entry_id: str) -> tuple[dict[str, str], ...]:
    entity = f'{{"entry_id":"{entry_id}"}}'
    return (
        {"title": SOLVED, "payload": f"/feedback_positive{entity}"},
        {"title": NOT_SOLVED, "payload": f"/feedback_negative{entity}"},
    )


def entry_outcome(
    engine: Engine, entry_id: str, decision: ReplyDecision, revision: int | None = None
) -> Outcome:
    """The entry's answer verbatim, its department and contact, and the feedback question.

    Raises ``EntryNotFound`` for an entry (revision) that is not published."""
    entry = engine.entry(entry_id, revision)
    replies = [
        Reply(entry.answer, decision, fields={"entry_id": entry.id, "revision": entry.revision})
    ]
    contact = engine.city.contact_for(entry.department, entry.contact)
    if contact:
        replies.append(Reply(f"お問い合わせ先：{contact}", decision))
    replies.append(Reply(FEEDBACK_PROMPT, decision, buttons=feedback_buttons(entry.id)))
    return Outcome(
        tuple(replies),
        {
            "last_entry_id": entry.id,
            "last_revision": entry.revision,
            "offered_entries": None,
            "failed_turns": 0,
        },
    )


def chosen_outcome(engine: Engine, entry_id: str) -> Outcome:
    """The entry the resident picked from the choices; a choice no longer published (a
    stale button: the entry was archived meanwhile) goes to a person."""
    try:
        return entry_outcome(engine, entry_id, "answer")
    except EntryNotFound:
        return Outcome(handoff=HandoffRequest("choice_unavailable"))


def choices_outcome(decision: Decision) -> Outcome:
    offered = decision.candidates[:3]
    buttons = tuple(
        {"title": c.title, "payload": f'/choose_entry{{"entry_id":"{c.entry_id}"}}'}
        for c in offered
    ) + ({"title": NONE_OF_THESE, "payload": "/none_of_these"},)
    reply = Reply(CLARIFY_PROMPT, "clarify", buttons, {"candidates": candidates_payload(decision)})
    return Outcome((reply,), {"offered_entries": [c.entry_id for c in offered], "failed_turns": 0})


def respond(engine: Engine, decision: Decision, failed_turns: int) -> Outcome:
    """Answer, offer the choices, ask to rephrase, or hand off, as the engine decided.

    A turn the engine cannot answer asks the resident to rephrase; the second such turn
    in a row hands the conversation to a person."""
    if decision.kind == "answer":
        best = decision.candidates[0]
        return entry_outcome(engine, best.entry_id, "answer", best.revision)
    if decision.kind == "clarify":
        return choices_outcome(decision)
    failed = failed_turns + 1
    if failed >= FAILED_TURNS_BEFORE_HANDOFF:
        return Outcome(
            remember={"failed_turns": 0},
            handoff=HandoffRequest("two_failed_turns", candidates_payload(decision)),
        )
    reply = Reply(REPHRASE, "rephrase", fields={"candidates": candidates_payload(decision)})
    return Outcome((reply,), {"failed_turns": failed})


def handoff_limited_reply(city: CityProfile) -> str:
    """What the resident is told when their address opened too many tickets lately
    (``MADOGUCHI_HANDOFF_RATE_PER_CLIENT``): no ticket is opened."""
    return HANDOFF_LIMITED.format(phone=city.main_phone, hours=city.hours_text)


def handoff_reply(
    city: CityProfile,
    now: dt.datetime,
    wait: Wait | None = None,
    reason: HandoffReason | None = None,
) -> str:
    """What the resident is told: why a person takes over (unless they asked), when a
    person answers (roughly how long during office hours, else from the next opening),
    and that the conversation is kept if they close the page. Without ``wait`` (the
    queue), the estimate is the city profile's stated target."""
    if city.is_open(now):
        wait = wait or Wait(city.reply_target_minutes, 0, 0)
        when = HANDOFF_OPEN.format(
            wait=japanese_duration(wait.minutes),
            queue=HANDOFF_QUEUE.format(waiting=wait.waiting) if wait.waiting else "",
        )
        local = now.astimezone(city.tz) if now.tzinfo else now.replace(tzinfo=city.tz)
        closing = dt.datetime.combine(local.date(), city.close_time, tzinfo=local.tzinfo)
        if local + dt.timedelta(minutes=wait.minutes) > closing:
            when += HANDOFF_AFTER_CLOSING.format(next=japanese_moment(city.next_opening(closing)))
    else:
        when = HANDOFF_CLOSED.format(
            next=japanese_moment(city.next_opening(now)),
            hours=city.hours_text,
            closed=city.closed_text,
        )
    return HANDOFF_REASONS.get(reason, "") + when + HANDOFF_KEPT


_LAST = re.compile(r"最後|一番下|いちばん下|一番した|さいご")
_MIDDLE = re.compile(r"真ん中|まんなか|中央")
_FIRST = re.compile(r"最初|一番上|いちばん上|はじめ|さいしょ|トップ")
_DIGIT = re.compile(r"([1-9])")
_KANJI = re.compile(r"([一二三四五])(?:番|つ|個)")
_KANJI_VALUES = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


# A typed choice is short (「2番目」「最後の」); a longer message is a question.
MAX_CHOICE_CHARS = 12


def typed_choice(text: str, offered: int) -> int | None:
    """The position a short typed message picks among ``offered`` choices, where no NLU
    has said it is a choice: a longer message is a question, even with a digit."""
    if len(unicodedata.normalize("NFKC", text)) > MAX_CHOICE_CHARS:
        return None
    return ordinal(text, offered)


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
