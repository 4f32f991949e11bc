"""Anonymous residents: server-issued conversation ids and per-client rate limits.

A conversation id is 24 random characters, the time it was issued (8 hex digits of Unix
seconds) and 16 characters of an HMAC over both with the server's secret
(``MADOGUCHI_HOME/secret.key``, made on first use). The server accepts only ids it
issued, for ``MADOGUCHI_CONVERSATION_HOURS`` after issuing them: a made-up or expired id
starts a new conversation, and the messages of a conversation are read only by whoever
holds its id. The id travels in request bodies and headers, never in a URL (proxies
and browsers keep URLs in their logs and history).

Rate limits are sliding windows kept in the API process (one process serves the API),
and so are the counts of which entries the chat answered (the empty chat's common topics).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException

TOO_MANY = "短い時間に多くのメッセージが送られました。少し待ってからもう一度お送りください。"


class SessionIds:
    RANDOM = 24
    STAMP = 8
    SIGNATURE = 16
    LENGTH = RANDOM + STAMP + SIGNATURE
    CLOCK_SKEW_S = 300  # an id "from the future" by more than this was not ours

    def __init__(
        self,
        secret: bytes,
        ttl_s: int = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ):
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock

    def _sign(self, signed_part: str) -> str:
        mac = hmac.new(self._secret, signed_part.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:12]).decode("ascii")

    def issue(self) -> str:
        signed_part = secrets.token_urlsafe(18) + f"{int(self._clock()):08x}"  # 24 + 8
        return signed_part + self._sign(signed_part)

    def valid(self, session_id: str | None) -> bool:
        """Issued by this server (same secret) and not expired."""
        if not session_id or len(session_id) != self.LENGTH:
            return False
        signed_part, signature = session_id[: -self.SIGNATURE], session_id[-self.SIGNATURE :]
        try:
            if not hmac.compare_digest(signature, self._sign(signed_part)):
                return False
        except (UnicodeEncodeError, TypeError):
            return False
        age = self._clock() - int(signed_part[self.RANDOM :], 16)
        return -self.CLOCK_SKEW_S <= age <= self.ttl_s


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


class AnswerCounts:
    """How often the chat answered each entry since the API started, for the common
    topics the empty chat offers. Kept in memory (the city profile's topics fill in
    after a restart); at most ``max_keys`` entries are counted."""

    def __init__(self, max_keys: int = 10_000):
        self.max_keys = max_keys
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(self, entry_id: str) -> None:
        with self._lock:
            if entry_id in self._counts or len(self._counts) < self.max_keys:
                self._counts[entry_id] += 1

    def most_asked(self, limit: int) -> list[str]:
        """Entry ids, most answered first; ties by id (the same order on every call)."""
        with self._lock:
            ranked = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
        return [entry_id for entry_id, _ in ranked[:limit]]
