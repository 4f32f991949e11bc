"""The instance's secret key (``MADOGUCHI_HOME/secret.key``) and what is derived from it.

One random key, made on first use (mode 600), is the only secret an operator keeps; every
other secret is an HMAC of it under a fixed label, so the API, the launcher and the
action server agree on them without another file or an environment variable:

- the chat's conversation ids are signed with it (``api.residents.SessionIds``);
- the token Rasa and the action server, and the API and Rasa's REST channel, show each
  other (:func:`internal_token`);
- logs name a conversation by a keyed hash of its id (:func:`conversation_ref`), never
  the id itself: whoever holds an id can read the staff messages of that conversation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

# The header that carries the internal token (Rasa → actions, API → Rasa's REST channel).
INTERNAL_TOKEN_HEADER = "X-Madoguchi-Token"


def load_secret(path: Path) -> bytes:
    """The server's secret key, created (mode 600) the first time."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as file:
            file.write(key)
        return key


def _derive(secret: bytes, label: str) -> str:
    return hmac.new(secret, label.encode("ascii"), hashlib.sha256).hexdigest()


def internal_token(secret: bytes) -> str:
    """The shared secret of the internal services (64 hex characters)."""
    return _derive(secret, "madoguchi internal services v1")


# Hex digits written as letters: a reference has no digit, so the personal-number masking
# of log lines can never take twelve of its digits for a My Number (「5c［個人番号］f1」).
_LETTERS = str.maketrans("0123456789", "ghjkmnpqrs")


def conversation_ref(secret: bytes, conversation_id: str) -> str:
    """What logs call a conversation: 16 letters (an HMAC of its id, its hex digits
    written as letters). The same conversation gets the same reference in every
    process's log; the id cannot be recovered from it."""
    key = _derive(secret, "madoguchi conversation log reference v1").encode("ascii")
    mac = hmac.new(key, conversation_id.encode("utf-8", "surrogateescape"), hashlib.sha256)
    return mac.hexdigest()[:16].translate(_LETTERS)


def token_matches(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8", "surrogateescape"), expected.encode())


def internal_refusal(headers, method: str, expected: str) -> tuple[int, str] | None:
    """Why a request to an internal service is refused (status, reason), or None.

    It must carry the internal token and, if it sends a body, be ``application/json``:
    a web page can make a browser send a cross-site ``text/plain`` POST without asking,
    but never one with a custom header or a JSON content type. Shared by the action
    server and Rasa's REST channel (Sanic headers; stdlib only, for the Rasa side)."""
    if not token_matches(headers.get(INTERNAL_TOKEN_HEADER), expected):
        return 401, "the internal token is missing or wrong"
    media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if method not in ("GET", "HEAD") and media != "application/json":
        return 415, "the body must be application/json"
    return None
