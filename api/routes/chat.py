"""Resident chat: each message goes through the Rasa server, which calls our actions.

If Rasa is down or slow (no reply within ``MADOGUCHI_RASA_TIMEOUT``), the message is
answered from the engine directly (``assistant.conversation.degraded``), with the same
entry and text, and Rasa is left alone for a cool-down before it is tried again. If Rasa
is up but the action behind the reply failed (it answered nothing), the resident gets an
apology and the conversation goes to a person. A resident is never left without a reply.

While the session has an open handoff ticket the assistant is silent: the message is
added to the ticket for the staff member and not sent to Rasa. What staff send arrives
through ``GET /api/chat/messages`` (the conversation id in ``X-Conversation-Id``, not
in the URL), which the chat page polls.

Personal numbers (My Number, phone, card, e-mail) are masked here, before the message
reaches Rasa, its tracker store, the actions, the tickets or any log; the page the chat
was opened on loses its query string and fragment here too.

Tickets are counted per client address (``MADOGUCHI_HANDOFF_RATE_PER_CLIENT`` per 10
minutes): beyond it the resident is asked to wait or phone, and no ticket is opened.
Rasa's actions learn it from the message's metadata (``handoff_allowed``).
"""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Header, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import client_address
from api.deps import AppSettings, City, KnowledgeDb, KnowledgeEngine, RasaClient
from api.residents import AnswerCounts, RateLimiter
from api.schemas import (
    SQLITE_INT_MAX,
    Button,
    ChatMessagePublic,
    ChatMessagesPublic,
    ChatReply,
    ChatRequest,
    ChatResponse,
    ChatTopic,
    ChatWelcomePublic,
)
from assistant.conversation import dialogue, handoffs, replies
from assistant.conversation.degraded import DegradedChat
from assistant.operations import logs
from assistant.operations.keys import INTERNAL_TOKEN_HEADER
from assistant.retrieval.engine import Engine
from knowledge.model import EntryNotFound
from knowledge.privacy import clean_page, mask_personal_data
from knowledge.tickets import append_turn, find_open_ticket, messages_for

router = APIRouter(prefix="/api", tags=["chat"])
log = logging.getLogger(__name__)
TOPICS_SHOWN = 4


def _buttons(raw: object) -> list[Button] | None:
    buttons = [Button(title=b["title"], payload=b["payload"]) for b in raw or []]
    return buttons or None


def _chat_reply(reply: dialogue.Reply) -> ChatReply:
    return ChatReply(
        text=reply.text,
        buttons=_buttons(reply.buttons),
        entry_id=reply.fields.get("entry_id"),
        revision=reply.fields.get("revision"),
    )


def _replies_from_rasa(
    messages: list[dict],
) -> tuple[list[ChatReply], dialogue.ReplyDecision, int | None]:
    """Rasa's REST output: our actions' replies (``assistant.conversation.replies``, text carried
    whole) and plain responses; the turn's decision and the ticket it opened, if any."""
    shown: list[ChatReply] = []
    decision: dialogue.ReplyDecision | None = None
    handoff_id = None
    for message in messages:
        reply = replies.decode(message.get("custom"))
        if reply is not None:
            decision = decision or reply.decision  # the turn's first decision is the turn's
            if reply.fields.get("handoff_id") is not None:  # an apology comes first
                decision, handoff_id = "handoff", reply.fields["handoff_id"]
            elif reply.decision == "handoff_refused":
                decision = "handoff_refused"
            if reply.text:
                shown.append(_chat_reply(reply))
        elif message.get("text"):
            shown.append(ChatReply(text=message["text"], buttons=_buttons(message.get("buttons"))))
    return shown, decision or "smalltalk", handoff_id


async def _ask_rasa(
    http: Request,
    settings,
    rasa,
    session_id: str,
    message: str,
    page: str,
    handoff_allowed: bool,
):
    """Rasa's messages for this turn, or None if Rasa is down, slow or broken."""
    circuit = http.app.state.rasa_circuit
    if not circuit.allows():
        return None
    try:
        response = await rasa.post(
            f"{settings.rasa_url}/webhooks/rest/webhook",
            json={
                "sender": session_id,
                "message": message,
                "metadata": {
                    "page": page,
                    "request_id": logs.request_id(),
                    "handoff_allowed": handoff_allowed,
                },
            },
            headers={INTERNAL_TOKEN_HEADER: http.app.state.internal_token},
            timeout=settings.rasa_timeout_s,
        )
        response.raise_for_status()
        messages = response.json()
    except (httpx.HTTPError, ValueError) as error:
        kind = (
            "timeout"
            if isinstance(error, httpx.TimeoutException)
            else ("unreachable" if isinstance(error, httpx.TransportError) else "error")
        )
        http.app.state.metrics.rasa_failures.labels(kind).inc()
        circuit.failed(f"{kind}: {type(error).__name__}")
        return None
    circuit.succeeded()
    return messages if isinstance(messages, list) else []


async def _actions_reachable(settings, rasa) -> bool:
    try:
        reply = await rasa.get(f"{settings.action_url}/health", timeout=1.0)
        return reply.status_code == 200
    except httpx.HTTPError:
        return False


def _apologise(
    db, engine: Engine, session_id: str, message: str, page: str, handoff_allowed: bool
) -> ChatResponse:
    """The action behind Rasa's reply failed: say so, and hand the conversation over."""
    now = engine.city.now()
    said = [
        {"role": "resident", "text": message, "at": now.timestamp()},
        {"role": "assistant", "text": dialogue.APOLOGY, "at": now.timestamp()},
    ]
    handoff = handoffs.hand_off(
        db,
        engine.city,
        now,
        dialogue.HandoffRequest("assistant_error"),
        session_id=session_id,
        transcript=said,
        allowed=handoff_allowed,
        page=page,
    )
    return ChatResponse(
        session_id=session_id,
        decision=handoff.decision,
        replies=[ChatReply(text=dialogue.APOLOGY), _chat_reply(handoff)],
        handoff_id=handoff.fields.get("handoff_id"),
    )


def _count_answers(counts: AnswerCounts, replies: list[ChatReply]) -> None:
    """An entry's answer is the one reply that names it (contact and feedback do not)."""
    for reply in replies:
        if reply.entry_id:
            counts.record(reply.entry_id)


def _topics(engine: Engine | None, city, counts: AnswerCounts) -> list[ChatTopic]:
    """The most-asked entries still published, then the profile's, TOPICS_SHOWN at most."""
    if engine is None:  # still loading: no entry can be offered yet
        return []
    topics: list[ChatTopic] = []
    for entry_id in dict.fromkeys([*counts.most_asked(TOPICS_SHOWN * 2), *city.topics]):
        try:
            entry = engine.entry(entry_id)
        except EntryNotFound:
            continue  # archived, not yet in force, or a profile id this city lacks
        if entry.questions:
            topics.append(
                ChatTopic(entry_id=entry.id, title=entry.title, question=entry.questions[0])
            )
        if len(topics) == TOPICS_SHOWN:
            break
    return topics


@router.get("/chat/welcome", response_model=ChatWelcomePublic)
def chat_welcome(http: Request, city: City) -> ChatWelcomePublic:
    """What the empty chat shows: the city, its welcome and office hours, common topics."""
    return ChatWelcomePublic(
        city=city.name,
        welcome=city.welcome,
        hours=city.hours_text,
        closed=city.closed_text,
        open_now=city.is_open(city.now()),
        topics=_topics(http.app.state.engines.engine, city, http.app.state.answer_counts),
        phones=list(city.phones),
    )


def _degraded(http: Request, engine: Engine) -> DegradedChat:
    state = http.app.state
    if state.degraded_chat is None or state.degraded_chat.engine is not engine:
        state.degraded_chat = DegradedChat(engine)
    return state.degraded_chat


@router.post("/chat", response_model=ChatResponse, response_model_exclude_none=True)
async def chat(
    body: ChatRequest,
    http: Request,
    settings: AppSettings,
    db: KnowledgeDb,
    engine: KnowledgeEngine,
    rasa: RasaClient,
) -> ChatResponse:
    state = http.app.state
    address = client_address(http)
    state.chat_per_client.check(address)
    # Only ids this server issued continue a conversation; anything else starts one.
    known = state.session_ids.valid(body.session_id)
    session_id = body.session_id if known else state.session_ids.issue()
    state.chat_per_session.check(session_id)  # the first message counts too
    message = mask_personal_data(body.message)
    page = clean_page(body.page)
    metrics = state.metrics
    ticket = await run_in_threadpool(find_open_ticket, db, session_id)
    if ticket is not None:
        await run_in_threadpool(append_turn, db, ticket.id, {"role": "resident", "text": message})
        metrics.decisions.labels("handoff", "ticket").inc()
        return ChatResponse(
            session_id=session_id, decision="handoff", replies=[], handoff_id=ticket.id
        )
    handoff_limit: RateLimiter = state.handoffs_per_client
    allowed = not handoff_limit.full(address)
    messages = await _ask_rasa(http, settings, rasa, session_id, message, page, allowed)
    if messages is not None:
        shown, decision, handoff_id = _replies_from_rasa(messages)
        if shown:
            if handoff_id is not None:  # no ticket was open: a new one
                handoff_limit.record(address)
            metrics.decisions.labels(decision, "rasa").inc()
            _count_answers(state.answer_counts, shown)
            return ChatResponse(
                session_id=session_id,
                decision=decision,
                replies=shown,
                handoff_id=handoff_id,
            )
        # Rasa answered nothing: the action failed. If the action server is down
        # altogether, answer from the engine; otherwise apologise and hand over.
        if await _actions_reachable(settings, rasa):
            metrics.rasa_failures.labels("empty").inc()
            log.error("Rasa returned no reply for a message: the action failed")
            metrics.decisions.labels("handoff", "apology").inc()
            response = await run_in_threadpool(
                _apologise, db, engine, session_id, message, page, allowed
            )
            if response.handoff_id is not None:
                handoff_limit.record(address)
            return response
        metrics.rasa_failures.labels("actions_unreachable").inc()
        log.warning("the action server is unreachable: answering from the engine directly")
    turn = await run_in_threadpool(
        _degraded(http, engine).respond, db, session_id, message, page, allowed
    )
    if turn.handoff_id is not None:
        handoff_limit.record(address)
    metrics.decisions.labels(turn.decision, "engine").inc()
    shown = [_chat_reply(r) for r in turn.replies]
    _count_answers(state.answer_counts, shown)
    return ChatResponse(
        session_id=session_id,
        decision=turn.decision,
        replies=shown,
        handoff_id=turn.handoff_id,
        degraded=True,
    )


ConversationId = Annotated[
    str,
    Header(
        alias="X-Conversation-Id",
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="The conversation's id, as the chat's replies gave it.",
    ),
]


@router.get("/chat/messages", response_model=ChatMessagesPublic)
async def chat_messages(
    session_id: ConversationId,
    http: Request,
    db: KnowledgeDb,
    after: Annotated[
        int, Query(ge=0, le=SQLITE_INT_MAX, description="the last message id already shown")
    ] = 0,
) -> ChatMessagesPublic:
    """What staff sent to this conversation since ``after``, and whether a person has it.
    The id is a header so that it is in no URL a proxy or browser history keeps."""
    state = http.app.state
    if not state.session_ids.valid(session_id):
        raise HTTPException(404, detail="no conversation with this id (or it has expired)")
    state.polls_per_session.check(session_id)

    def read() -> ChatMessagesPublic:
        return ChatMessagesPublic(
            session_id=session_id,
            paused=find_open_ticket(db, session_id) is not None,
            messages=[ChatMessagePublic(**row) for row in messages_for(db, session_id, after)],
        )

    return await run_in_threadpool(read)
