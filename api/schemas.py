"""API shapes, named by role. The libraries below use dataclasses; only the API uses pydantic."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from assistant.conversation.dialogue import ReplyDecision
from assistant.retrieval.ranking import DecisionKind
from knowledge.model import has_control_characters, has_html

MAX_MESSAGE_CHARS = 1000
# The largest integer SQLite stores: bound every id, revision and offset a client sends.
SQLITE_INT_MAX = 2**63 - 1


class ChatRequest(BaseModel):
    session_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="Returned by the first reply; send it back to continue the conversation.",
    )
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    page: str = Field(
        default="",
        max_length=500,
        description="The page of the city website the chat was opened on (for staff context).",
    )

    @field_validator("message")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be empty or only whitespace")
        if has_control_characters(value):
            raise ValueError("message must not contain control characters or invisible characters")
        return value.strip()

    @field_validator("page")
    @classmethod
    def page_text(cls, value: str) -> str:
        if has_control_characters(value):
            raise ValueError("page must not contain control characters or invisible characters")
        return value


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
    decision: ReplyDecision = Field(
        description="handoff_refused: this address opened too many tickets lately; "
        "no ticket was opened (the reply says to wait or phone)."
    )
    replies: list[ChatReply]
    handoff_id: int | None = None
    degraded: bool | None = Field(
        default=None,
        description="True when answered from the engine directly, because Rasa is down.",
    )


class ChatTopic(BaseModel):
    entry_id: str
    title: str
    question: str = Field(description="What the chat sends when the topic is pressed.")


class ChatWelcomePublic(BaseModel):
    city: str
    welcome: str
    hours: str = Field(description="When staff answer in the chat, e.g. 「平日 8:30〜17:15」.")
    closed: str
    open_now: bool = Field(description="Whether staff are at work now (city time).")
    topics: list[ChatTopic] = Field(
        description="Common topics: the most-asked entries, then the city profile's."
    )
    phones: list[str] = Field(description="The city's phone numbers, shown as tel: links.")


class ChatMessagePublic(BaseModel):
    id: int
    role: Literal["staff", "system"]
    text: str
    at: str


class ChatMessagesPublic(BaseModel):
    session_id: str
    paused: bool = Field(description="True while a person is handling this conversation.")
    messages: list[ChatMessagePublic]


class AnswerPublic(BaseModel):
    entry_id: str
    revision: int
    title: str
    answer: str
    score: float
    department: str
    contact: str
    category: str = ""
    documents: list[str] = []
    fees: str = ""
    staff_notes: str = Field(default="", description="For staff only; never told to residents.")
    source_url: str = ""
    valid_from: str | None = None
    valid_until: str | None = None


class AnswersPublic(BaseModel):
    decision: DecisionKind
    confidence: float
    knowledge_revision: int
    results: list[AnswerPublic]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str] = Field(
        default_factory=list, description="Why the status is not ok, for an operator."
    )
    components: dict[str, dict]


class EntryCreate(BaseModel):
    """An entry's content, as in the import schema. Saving it makes a new draft revision."""

    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1, max_length=80)
    title: str
    questions: list[str]
    answer: str
    category: str = ""
    department: str = ""
    contact: str = ""
    documents: list[str] = []
    fees: str = ""
    tags: list[str] = []
    staff_notes: str = ""
    source_url: str = ""
    valid_from: str | None = None
    valid_until: str | None = None


class RevisionPublic(BaseModel):
    entry_id: str
    revision: int
    status: str
    title: str
    questions: list[str]
    answer: str
    category: str
    department: str
    contact: str
    documents: list[str]
    fees: str
    tags: list[str]
    staff_notes: str
    source_url: str
    valid_from: str | None
    valid_until: str | None
    author: str
    created_at: str
    reviewer: str
    published_at: str
    latest_revision: int | None = Field(
        default=None, description="In lists: the entry's newest revision (a draft, say)."
    )
    latest_status: str | None = None
    upcoming_from: str | None = Field(
        default=None,
        description="In lists: the 施行日 of the next published revision still to take "
        "effect, if any (the revision shown is the one in force).",
    )
    diff: list[dict] | None = Field(
        default=None,
        description="In histories: changes from the revision before, per field, by line.",
    )


class EntriesPublic(BaseModel):
    data: list[RevisionPublic]
    count: int
    today: str = Field(description="The city's today (YYYY-MM-DD, its time zone).")


class AuditEventPublic(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    entry_id: str | None
    revision: int | None
    detail: dict


class EntryHistoryPublic(BaseModel):
    entry_id: str
    revisions: list[RevisionPublic]
    audit: list[AuditEventPublic]
    today: str = Field(description="The city's today: which revision is in force, which due.")
    names: dict[str, str] = Field(
        default_factory=dict,
        description="A readable name for each author, reviewer and audit actor.",
    )


class ArchiveRequest(BaseModel):
    reason: str = Field(default="", max_length=500)

    @field_validator("reason")
    @classmethod
    def plain_reason(cls, value: str) -> str:
        if has_control_characters(value) or has_html(value):
            raise ValueError("reason must be plain text (no HTML, no control characters)")
        return value


class RollbackRequest(BaseModel):
    to_revision: int = Field(ge=1, le=SQLITE_INT_MAX)


class TurnPublic(BaseModel):
    model_config = {"extra": "allow"}

    role: str
    text: str


class TicketPublic(BaseModel):
    # No conversation id: with it, anyone who saw the ticket could read the resident's
    # staff messages and write to the ticket as the resident.
    id: int
    status: Literal["open", "resolved"]
    reason: str
    channel: str
    page: str
    question: str = Field(
        description="The resident's last real inquiry before the handoff (not a request for "
        "a person, a greeting or a button): the question that failed; empty if none."
    )
    created_at: str
    updated_at: str
    waiting_s: int = Field(description="Seconds since the handoff (until resolved).")
    claimed_by: str
    claimed_at: str
    resolved_by: str
    resolved_at: str
    note: str
    answered_entry: str = Field(
        default="",
        description="The entry that answered the resident, as staff said when resolving "
        "(its question became a suggested phrasing); empty if none.",
    )
    answered_title: str = Field(
        default="",
        description="That entry's title as residents see it today (else its latest "
        "revision's); empty if none.",
    )
    transcript: list[TurnPublic]
    candidates: list[dict]
    names: dict[str, str] = Field(
        default_factory=dict,
        description="A readable name for each person on the ticket (claimed_by, "
        "resolved_by, reply authors): the display name, or 「管理者（コマンド）」 for the CLI.",
    )
    masked: list[str] = Field(
        default_factory=list,
        description="After a reply or resolve: the kinds of personal data masked in the "
        "text just sent (個人番号, 電話番号, ...); the staff page warns.",
    )


class TicketsPublic(BaseModel):
    data: list[TicketPublic]
    count: int


class TicketReply(BaseModel):
    model_config = {"extra": "forbid"}

    text: str = Field(min_length=1, max_length=2000)


class TicketResolve(BaseModel):
    model_config = {"extra": "forbid"}

    note: str = Field(default="", max_length=2000)
    entry_id: str | None = Field(
        default=None,
        max_length=80,
        description="The entry that answered the resident: the handed-off question becomes "
        "a suggested phrasing of it.",
    )
    question: str | None = Field(
        default=None,
        max_length=2000,
        description="The question as staff reworded it for the suggestion (personal details "
        "taken out); default the ticket's question.",
    )


class LoginRequest(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenRequest(LoginRequest):
    expires_in_s: int = Field(default=3600, ge=60, le=30 * 24 * 3600)


class MePublic(BaseModel):
    name: str
    role: Literal["staff", "editor", "admin"]
    display_name: str
    csrf_token: str = Field(description="Send it as X-CSRF-Token with every change.")
    expires_at: str


class SessionPublic(BaseModel):
    ref: str = Field(description="Names the session for DELETE /api/auth/sessions/{ref}.")
    kind: Literal["cookie", "token"]
    client: str = Field(description="The address it was opened from.")
    created_at: str
    last_seen_at: str
    expires_at: str
    current: bool = Field(description="True for the session or token of this request.")


class SessionsPublic(BaseModel):
    data: list[SessionPublic]
    count: int


class TokenPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_at: str
    role: str


class UserPublic(BaseModel):
    name: str
    role: str
    display_name: str
    created_at: str
    disabled: bool


class UsersPublic(BaseModel):
    data: list[UserPublic]


class AuditPublic(BaseModel):
    data: list[AuditEventPublic]


class ChangePublic(BaseModel):
    entry_id: str
    revision: int
    title: str
    department: str
    category: str
    kind: Literal["published", "takes_effect"]
    date: str
    upcoming: bool
    imported: bool = Field(
        default=False,
        description="The revision came from a bulk import (the staff page folds these away).",
    )


class ChangesPublic(BaseModel):
    month: str
    today: str
    changes: list[ChangePublic]


class ProposeRequest(BaseModel):
    model_config = {"extra": "forbid"}

    id: str | None = Field(default=None, max_length=80)
    title: str | None = Field(default=None, max_length=200)
    question: str | None = Field(default=None, max_length=500)
    answer: str | None = Field(default=None, max_length=10_000)


class PreviewDraft(EntryCreate):
    """A draft to preview; a new entry may not have its id yet."""

    id: str = Field(default="", max_length=80)


class PreviewRequest(BaseModel):
    model_config = {"extra": "forbid"}

    questions: list[str] = Field(min_length=1, max_length=20)
    draft: PreviewDraft | None = None
    as_of: dt.date | None = None

    @field_validator("questions")
    @classmethod
    def questions_text(cls, value: list[str]) -> list[str]:
        cleaned = [q.strip() for q in value]
        if any(not q for q in cleaned):
            raise ValueError("questions must not be empty")
        if any(len(q) > MAX_MESSAGE_CHARS or has_control_characters(q) for q in cleaned):
            raise ValueError(
                f"each question must be at most {MAX_MESSAGE_CHARS} characters of plain text"
            )
        return cleaned


class CandidateBrief(BaseModel):
    entry_id: str
    title: str
    score: float


class OutcomePublic(BaseModel):
    decision: DecisionKind
    confidence: float
    entry_id: str | None
    revision: int | None
    title: str | None
    text: str | None = Field(description="What the chat answers; null unless an answer.")
    candidates: list[CandidateBrief]


class PreviewResult(BaseModel):
    question: str
    now: OutcomePublic
    with_draft: OutcomePublic | None


class PreviewPublic(BaseModel):
    as_of: str
    results: list[PreviewResult]


class UnansweredItem(BaseModel):
    kind: str
    text: str
    at: str
    ticket_id: int | None
    entry_id: str | None


class UnansweredGroup(BaseModel):
    size: int
    representative: str
    suggestion: CandidateBrief | None
    items: list[UnansweredItem]


class UnansweredPublic(BaseModel):
    days: int
    groups: list[UnansweredGroup]


class SuggestionConflictPublic(BaseModel):
    code: Literal["suggestion.same_as_phrasing", "suggestion.changes_answer"]
    message: str = Field(description="What the conflict is, in Japanese, for the editor.")
    entry_id: str = Field(description="The other entry.")
    question: str = Field(description="The other entry's phrasing concerned.")


class SuggestionWording(BaseModel):
    id: int = Field(description="The suggestion whose text is shown (accept and reject take it).")
    ids: list[int] = Field(description="Every suggestion of these words for this entry.")
    text: str = Field(description="The wording, as stored (personal data masked).")
    sources: dict[str, int] = Field(
        description="How many suggestions came from staff resolving a ticket and from "
        "residents who picked the entry and said 「解決した」 (weaker evidence)."
    )
    against: int = Field(description="How many residents said 「解決しなかった」 to it.")
    first_at: str
    last_at: str
    tickets: list[int]
    revision: int | None = Field(
        default=None, description="Accepted: the draft revision the wording went into."
    )
    conflict_checked: bool = Field(
        default=False,
        description="Open wordings: whether the preview check ran (`conflict` is then "
        "complete; without it, only an equal phrasing of another entry is found).",
    )
    conflict: SuggestionConflictPublic | None = Field(
        default=None, description="Open wordings: why accepting it needs care, if it does."
    )


class SuggestionGroupPublic(BaseModel):
    entry_id: str
    title: str = Field(description="The entry's title in its latest revision.")
    wordings: list[SuggestionWording]


class SuggestionsPublic(BaseModel):
    data: list[SuggestionGroupPublic]
    count: int = Field(description="How many wordings are listed.")
    counts: dict[str, int] = Field(description="Wordings open, accepted and rejected.")


class SuggestionCounts(BaseModel):
    open: int
    accepted: int
    rejected: int


class SuggestionChoice(BaseModel):
    model_config = {"extra": "forbid"}

    id: int = Field(ge=1, le=SQLITE_INT_MAX)
    text: str | None = Field(
        default=None, max_length=2000, description="The wording as the editor edited it."
    )


class SuggestionsAccept(BaseModel):
    model_config = {"extra": "forbid"}

    entry_id: str = Field(min_length=1, max_length=80)
    items: list[SuggestionChoice] = Field(max_length=100)
    force: bool = Field(
        default=False, description="Accept wordings with a conflict too (after reading it)."
    )


class SuggestionsReject(BaseModel):
    model_config = {"extra": "forbid"}

    ids: list[Annotated[int, Field(ge=1, le=SQLITE_INT_MAX)]] = Field(max_length=1000)
    reason: str = Field(default="", max_length=2000)


class SuggestionsRejected(BaseModel):
    rejected: int = Field(description="How many suggestions were rejected.")
