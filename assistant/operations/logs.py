"""Structured logs: one JSON object per line, with the request id that ties together
what the API, the Rasa server and the action server did for one resident message.

The API takes the request id from an ``X-Request-ID`` header (if well-formed) or makes
one, returns it in the response, and passes it to Rasa in the message metadata; the
actions read it from there (``assistant.conversation.actions.runtime.Step``). Personal numbers are
masked in every message and traceback before it is written, whatever logged it.

``MADOGUCHI_LOG_FORMAT=json`` (set by ``madoguchi serve`` for its services) turns this on;
otherwise a process keeps plain text logs (tests, the CLI).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from knowledge.privacy import mask_personal_data

_REQUEST_ID = contextvars.ContextVar[str | None]("madoguchi_request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


def request_id() -> str | None:
    return _REQUEST_ID.get()


def new_request_id(incoming: str | None = None) -> str:
    """The caller's id if it is well-formed (so a proxy's id carries through), else a new one."""
    return incoming if incoming and _VALID_ID.match(incoming) else uuid.uuid4().hex


@contextmanager
def request_context(value: str | None) -> Iterator[None]:
    token = _REQUEST_ID.set(value if isinstance(value, str) and _VALID_ID.match(value) else None)
    try:
        yield
    finally:
        _REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": mask_personal_data(record.getMessage()),
        }
        if rid := getattr(record, "request_id", None) or _REQUEST_ID.get():
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "request_id" and not key.startswith("_"):
                entry[key] = mask_personal_data(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


# Loggers that frameworks give handlers of their own; ours replace them.
_FRAMEWORK_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "sanic.root",
    "sanic.error",
    "sanic.access",
    "sanic.server",
    "rasa_sdk",
)


def configure(service: str, level: int = logging.INFO) -> None:
    """Send every log record of this process to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _FRAMEWORK_LOGGERS:
        framework = logging.getLogger(name)
        framework.handlers.clear()
        framework.propagate = True
    # The API logs each request itself, with its route, status, duration and request id.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def configure_from_env(service: str) -> bool:
    """JSON logs if ``MADOGUCHI_LOG_FORMAT=json``; returns whether they were configured."""
    if os.environ.get("MADOGUCHI_LOG_FORMAT", "").lower() != "json":
        return False
    configure(service)
    return True
