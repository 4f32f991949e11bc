"""Library errors as HTTP responses, in one place (registered once on the app, as
starlette's ``exception_handlers``): no route catches a library error to rebuild it.

Every such response keeps the ``detail`` it always had (English for API clients, a list
of field problems for invalid entries) and adds the error's ``code``, its ``params``
and the Japanese ``message`` the consoles show; an invalid entry (and a request that
fails FastAPI's validation) adds ``problems``, one per field problem, each with its own
code, params and message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from knowledge.accounts import LoginFailed, LoginThrottled, SessionNotFound
from knowledge.errors import KnowledgeError
from knowledge.model import EntryNotFound, InvalidEntry, WorkflowError
from knowledge.store import SchemaTooNew
from knowledge.suggestions import (
    InvalidSuggestion,
    SuggestionConflict,
    SuggestionDecided,
    SuggestionError,
    SuggestionNotFound,
    UnknownEntry,
)
from knowledge.tickets import InvalidReply, TicketClosed, TicketNotFound

log = logging.getLogger(__name__)

STATUS: dict[type[KnowledgeError], int] = {
    InvalidEntry: 422,
    InvalidReply: 422,
    InvalidSuggestion: 422,
    UnknownEntry: 422,
    SuggestionError: 422,
    EntryNotFound: 404,
    TicketNotFound: 404,
    SessionNotFound: 404,
    SuggestionNotFound: 404,
    WorkflowError: 409,
    TicketClosed: 409,
    SuggestionDecided: 409,
    SuggestionConflict: 409,
    LoginFailed: 401,
    LoginThrottled: 429,
    SchemaTooNew: 503,
}

# FastAPI's own validation (``request.validation``, each problem in ``problems``): the
# kinds a console's form can meet, in Japanese; any other is ``request.invalid``.
REQUEST_MESSAGES = {
    "request.validation": "入力内容を確認してください。",
    "request.missing": "入力してください。",  # also a required text left empty
    "request.string_unicode": "使えない文字が含まれています。",
    "request.string_too_long": "{max_length}文字以内にしてください。",
    "request.invalid": "この項目の値が正しくありません。",
}
_REQUEST_TYPES = {"missing", "string_unicode", "string_too_long"}


def body(error: KnowledgeError, detail: Any = None) -> dict[str, Any]:
    return {
        "detail": str(error) if detail is None else detail,
        "code": error.code,
        "params": error.params,
        "message": error.message,
    }


async def knowledge_error(request: Request, error: KnowledgeError) -> JSONResponse:
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    return JSONResponse(body(error), status)


async def invalid_entry(request: Request, error: InvalidEntry) -> JSONResponse:
    detail = [{"entry_id": eid, "field": field, "msg": why} for eid, field, why in error.problems]
    problems = [
        {
            "entry_id": p[0],
            "field": p[1],
            "code": p.code,
            "params": p.params,
            "message": p.message,
        }
        for p in error.problems
    ]
    return JSONResponse(body(error, detail) | {"problems": problems}, 422)


async def login_failed(request: Request, error: LoginFailed) -> JSONResponse:
    # One answer for every cause (unknown name, wrong password, disabled account), and
    # nothing beside it.
    return JSONResponse({"detail": error.message}, 401)


async def login_throttled(request: Request, error: LoginThrottled) -> JSONResponse:
    # The wait is in Retry-After (seconds); the login page words it.
    return JSONResponse(
        body(error, error.message), 429, headers={"Retry-After": str(error.retry_after_s)}
    )


async def schema_too_new(request: Request, error: SchemaTooNew) -> JSONResponse:
    """Every route needs the database: none can serve until the program is upgraded."""
    log.error("%s", error)
    return JSONResponse(body(error, error.message) | {"error": str(error)}, 503)


def request_problem(problem: dict[str, Any]) -> dict[str, Any]:
    """A validation problem's code, params and Japanese message."""
    kind, params = problem.get("type"), dict(problem.get("ctx") or {})
    if kind == "string_too_short" and params.get("min_length") == 1:
        code = "request.missing"
    elif kind in _REQUEST_TYPES:
        code = f"request.{kind}"
    else:
        code, params = "request.invalid", {"type": kind}
    return {
        "loc": problem["loc"],
        "code": code,
        "params": params,
        "message": REQUEST_MESSAGES[code].format_map(params),
    }


def validation_response(detail: list[dict[str, Any]]) -> JSONResponse:
    """A 422 for requests that fail validation, FastAPI's ``detail`` with our codes."""
    return JSONResponse(
        {
            "detail": detail,
            "code": "request.validation",
            "params": {},
            "message": REQUEST_MESSAGES["request.validation"],
            "problems": [request_problem(p) for p in detail],
        },
        422,
    )


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, bool)) else str(value)


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 without the input echoed back; the context (the limit, the JSON
    parser's reason) as plain values."""
    problems = []
    for e in error.errors():
        problem = {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": str(e.get("msg"))}
        if isinstance(e.get("ctx"), dict):
            problem["ctx"] = {key: _plain(value) for key, value in e["ctx"].items()}
        problems.append(problem)
    return validation_response(problems)


def install(app: FastAPI) -> None:
    for kind in STATUS:
        app.add_exception_handler(kind, knowledge_error)
    app.add_exception_handler(InvalidEntry, invalid_entry)
    app.add_exception_handler(LoginFailed, login_failed)
    app.add_exception_handler(LoginThrottled, login_throttled)
    app.add_exception_handler(SchemaTooNew, schema_too_new)
    app.add_exception_handler(RequestValidationError, validation_error)
