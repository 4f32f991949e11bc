"""API shapes, named by role. The libraries below use dataclasses; only the API uses pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

MAX_MESSAGE_CHARS = 1000


class ChatRequest(BaseModel):
    session_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="Returned by the first reply; send it back to continue the conversation.",
    )
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    @field_validator("message")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be empty or only whitespace")
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
            raise ValueError("message must not contain control characters")
        return value.strip()


class Button(BaseModel):
    title: str
    payload: str


class ChatReply(BaseModel):
    text: str
    buttons: list[Button] | None = None
    entry_id: str | None = None
    revision: int | None = None


class ChatResponse(BaseModel):
    session_id: str
    decision: Literal["answer", "clarify", "handoff", "smalltalk"]
    replies: list[ChatReply]
    handoff_id: int | None = None


class AnswerPublic(BaseModel):
    entry_id: str
    revision: int
    title: str
    answer: str
    score: float
    department: str
    contact: str


class AnswersPublic(BaseModel):
    decision: Literal["answer", "clarify", "handoff"]
    confidence: float
    knowledge_revision: int
    results: list[AnswerPublic]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, dict]
