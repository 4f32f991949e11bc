"""Anonymous residents: server-issued conversation ids and per-client rate limits.

A conversation id is 24 random characters followed by 16 characters of an HMAC over
them with the server's secret (``MADOGUCHI_HOME/secret.key``, made on first use). The
server accepts only ids it issued: a made-up id starts a new conversation, and the
messages of a conversation are read only by whoever holds its id.

Rate limits are sliding windows kept in the API process (one process serves the API).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path

from fastapi import HTTPException

TOO_MANY = "短い時間に多くのメッセージが送られました。少し待ってからもう一度お送りください。"


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


class SessionIds:
    RANDOM = 24
    SIGNATURE = 16

    def __init__(self, secret: bytes):
        self._secret = secret

    def _sign(self, random_part: str) -> str:
        mac = hmac.new(self._secret, random_part.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:12]).decode("ascii")

    def issue(self) -> str:
        random_part = secrets.token_urlsafe(18)  # 24 characters
        return random_part + self._sign(random_part)

    def valid(self, session_id: str | None) -> bool:
        if not session_id or len(session_id) != self.RANDOM + self.SIGNATURE:
            return False
        random_part, signature = session_id[: self.RANDOM], session_id[self.RANDOM :]
        try:
            return hmac.compare_digest(signature, self._sign(random_part))
        except (UnicodeEncodeError, TypeError):
            return False


class RateLimiter:
    """At most ``limit`` events per ``window_s`` per key; remembers ``max_keys`` keys."""

    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 50_000):
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._events: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> collections.deque:
        """``key``'s events inside the window (call holding the lock)."""
        events = self._events.pop(key, None) or collections.deque()
        while events and events[0] <= now - self.window_s:
            events.popleft()
        self._events[key] = events
        if len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return events

    def retry_after(self, key: str) -> int:
        """Record an event for ``key``; 0 if allowed, else seconds until it would be."""
        now = time.monotonic()
        with self._lock:
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return max(1, int(events[0] + self.window_s - now) + 1)
            events.append(now)
            return 0

    def full(self, key: str) -> bool:
        """Whether one more event for ``key`` would be over the limit (nothing recorded):
        for limits counted only when the event happened, such as a ticket opened."""
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= self.limit

    def record(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait:
            raise HTTPException(429, detail=TOO_MANY, headers={"Retry-After": str(wait)})
