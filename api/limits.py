"""API-wide protection against bad input, in front of every route.

- A request body larger than :data:`MAX_BODY_BYTES` is refused with 413 before it is
  read whole (from its Content-Length, else while it arrives).
- A JSON body (``application/json`` or ``+json``) must be UTF-8, not nested too deeply
  for the parser, hold no number of more than 4,300 digits (Python refuses to read it)
  and no lone surrogate escape (``"\\ud800"``): such strings pass validation but cannot
  be stored in SQLite or written back as UTF-8. The first three are a 400, the last a
  422 naming the field. Malformed JSON is left to FastAPI (a 422 with the position).
- Validation errors (``api/errors.py``) list the type, place and reason of each problem
  but do not echo the input back: an echoed NaN, lone surrogate or 10,000-level list
  cannot be written as JSON, and echoing megabytes helps nobody.

Messages that a resident's chat can show are Japanese.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import validation_response

MAX_BODY_BYTES = 1024 * 1024
TOO_LARGE = f"送信内容が大きすぎます（上限 {MAX_BODY_BYTES:,} バイト）。"
NOT_UTF8 = "送信内容の文字コードが UTF-8 ではありません（{position} バイト目）。"
TOO_DEEP = "送信内容の JSON の入れ子が深すぎます。"
UNREADABLE = "送信内容の JSON を読めません（{reason}）。"


class _BodyTooLarge(Exception):
    pass


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _lone_surrogate(data: Any) -> tuple[list[str | int], str] | None:
    """Where a lone surrogate in parsed JSON is (keys too), and the string holding it."""
    stack: list[tuple[list[str | int], Any]] = [([], data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return loc, value
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((loc + [key], key))
                stack.append((loc + [key], item))
        elif isinstance(value, list):
            stack.extend((loc + [index], item) for index, item in enumerate(value))
    return None


def _json_problem(body: bytes) -> JSONResponse | None:
    """Why a JSON body must not reach the routes, as the response to send; else None.
    Malformed JSON is left to FastAPI, which names the position (422)."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        return JSONResponse({"detail": NOT_UTF8.format(position=error.start + 1)}, 400)
    try:
        data = json.loads(text)
    except RecursionError:
        return JSONResponse({"detail": TOO_DEEP}, 400)
    except json.JSONDecodeError:
        return None
    except ValueError as error:  # a number of more than 4,300 digits
        reason = str(error).split(": value has")[0]
        return JSONResponse({"detail": UNREADABLE.format(reason=reason)}, 400)
    found = _lone_surrogate(data)
    if found is None:
        return None
    loc, value = found
    position = next(i for i, ch in enumerate(value) if 0xD800 <= ord(ch) <= 0xDFFF)
    problem = {
        "type": "string_unicode",
        "loc": ["body", *loc],
        "msg": f"String should be valid Unicode: lone surrogate at position {position}",
    }
    return validation_response([problem])


class BodyLimit:
    """Pure ASGI: read the body (at most ``max_bytes``), check JSON, then replay it."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": TOO_LARGE}, 413)(scope, receive, send)
            return
        try:
            body, last = await self._read(receive)
        except _BodyTooLarge:
            await JSONResponse({"detail": TOO_LARGE}, 413)(scope, receive, send)
            return
        if body and _is_json(headers.get("content-type")):
            problem = _json_problem(body)
            if problem is not None:
                await problem(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {**last, "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[bytes, Message]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks), message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), message


def install(app: FastAPI) -> None:
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
