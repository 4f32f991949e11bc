"""Resident chat: each message goes through the Rasa server, which calls our actions.

While the session has an open handoff ticket the assistant is silent: the message is
added to the ticket for the staff member and not sent to Rasa. What staff send arrives
through ``GET /api/chat/{session_id}/messages``, which the chat page polls.

Personal numbers (My Number, phone, card, e-mail) are masked here, before the message
reaches Rasa, its tracker store, the actions, the tickets or any log.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import httpx
from fastapi import APIRouter, HTTPException, Path, Query
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, KnowledgeDb, RasaClient
from api.schemas import (
    Button,
    ChatMessagePublic,
    ChatMessagesPublic,
    ChatReply,
    ChatRequest,
    ChatResponse,
)
from knowledge.tickets import append_turn, find_open_ticket, mask_personal_data, messages_for

router = APIRouter(prefix="/api", tags=["chat"])
log = logging.getLogger(__name__)


def _buttons(raw: object) -> list[Button] | None:
    buttons = [Button(title=b["title"], payload=b["payload"]) for b in raw or []]
    return buttons or None


def _replies_from_rasa(messages: list[dict]) -> tuple[list[ChatReply], dict]:
    """Rasa's REST output: our actions' payloads (text carried whole) and plain responses."""
    replies: list[ChatReply] = []
    meta: dict = {}
    for message in messages:
        custom = message.get("custom")
        if isinstance(custom, dict) and isinstance(custom.get("madoguchi"), dict):
            info = custom["madoguchi"]
            meta = meta or info  # the first decision of the turn is the turn's decision
            if info.get("text"):
                replies.append(
                    ChatReply(
                        text=info["text"],
                        buttons=_buttons(info.get("buttons")),
                        entry_id=info.get("entry_id"),
                        revision=info.get("revision"),
                    )
                )
        elif message.get("text"):
            replies.append(
                ChatReply(text=message["text"], buttons=_buttons(message.get("buttons")))
            )
    return replies, meta


@router.post("/chat", response_model=ChatResponse, response_model_exclude_none=True)
async def chat(
    request: ChatRequest, settings: AppSettings, db: KnowledgeDb, rasa: RasaClient
) -> ChatResponse:
    session_id = request.session_id or uuid.uuid4().hex
    message = mask_personal_data(request.message)
    ticket = await run_in_threadpool(find_open_ticket, db, session_id)
    if ticket is not None:
        await run_in_threadpool(append_turn, db, ticket.id, {"role": "resident", "text": message})
        return ChatResponse(
            session_id=session_id, decision="handoff", replies=[], handoff_id=ticket.id
        )
    try:
        response = await rasa.post(
            f"{settings.rasa_url}/webhooks/rest/webhook",
            json={
                "sender": session_id,
                "message": message,
                "metadata": {"page": request.page},
            },
            timeout=settings.rasa_timeout_s,
        )
        response.raise_for_status()
        messages = response.json()
    except (httpx.HTTPError, ValueError) as error:
        log.error("Rasa at %s failed: %r", settings.rasa_url, error)
        raise HTTPException(
            503, detail="対話エンジンに接続できません。しばらくしてからもう一度お試しください。"
        ) from None
    replies, meta = _replies_from_rasa(messages if isinstance(messages, list) else [])
    decision = meta.get("decision", "smalltalk")
    # Action failures reach us as an empty reply list; the resident must never see nothing.
    if not replies:
        raise HTTPException(
            503, detail="応答を作成できませんでした。しばらくしてからもう一度お試しください。"
        )
    return ChatResponse(
        session_id=session_id,
        decision=decision,
        replies=replies,
        handoff_id=meta.get("handoff_id"),
    )


SessionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


@router.get("/chat/{session_id}/messages", response_model=ChatMessagesPublic)
async def chat_messages(
    session_id: SessionId,
    db: KnowledgeDb,
    after: Annotated[int, Query(ge=0, description="the last message id already shown")] = 0,
) -> ChatMessagesPublic:
    """What staff sent to this conversation since ``after``, and whether a person has it."""

    def read() -> ChatMessagesPublic:
        return ChatMessagesPublic(
            session_id=session_id,
            paused=find_open_ticket(db, session_id) is not None,
            messages=[ChatMessagePublic(**row) for row in messages_for(db, session_id, after)],
        )

    return await run_in_threadpool(read)
