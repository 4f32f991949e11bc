"""The API's long-lived state: the engine (loaded in the background, so a rebuild of a
missing or corrupt index does not keep the service from saying what it is doing) and
the state of the connection to Rasa (a circuit breaker, so a dead Rasa costs one
timeout, not one per message)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from assistant.operations.config import Settings
from assistant.retrieval.engine import Engine

log = logging.getLogger(__name__)


class EngineHolder:
    """Loads the engine on a thread and reports progress: loading → (rebuilding) → ready."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine: Engine | None = None
        self.state = "loading"  # loading | rebuilding | ready | failed
        self.done = 0
        self.total = 0
        self.error: str | None = None
        self.rebuilt_because: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._load, name="engine-load", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.engine is not None

    def _progress(self, keys: Iterable[str]) -> Iterator[str]:
        keys = list(keys)
        self.total, self.done = len(keys), 0
        if self.total:
            self.state = "rebuilding"
            log.info("index: encoding %d entry revisions", self.total)
        step = max(1, self.total // 10)
        for self.done, key in enumerate(keys, start=1):
            yield key
            if self.done % step == 0 or self.done == self.total:
                log.info("index: %d/%d entry revisions encoded", self.done, self.total)

    def _load(self) -> None:
        started = time.monotonic()
        try:
            engine = Engine.load(self.settings, progress=self._progress)
        except Exception as error:
            self.state, self.error = "failed", f"{type(error).__name__}: {error}"
            log.exception("the engine could not be loaded")
            return
        self.rebuilt_because = engine.rebuilt_because
        self.engine, self.state = engine, "ready"
        log.info(
            "engine ready in %.1f s: %d entries, knowledge revision %d%s",
            time.monotonic() - started,
            engine.dense.entry_count(),
            engine.dense.knowledge_revision,
            f" (index rebuilt: {engine.rebuilt_because})" if engine.rebuilt_because else "",
        )

    def describe(self) -> dict:
        info: dict = {"status": "ok" if self.state == "ready" else self.state}
        if self.state == "rebuilding":
            info["progress"] = f"{self.done}/{self.total}"
        if self.error:
            info["error"] = self.error
        if self.rebuilt_because:
            info["rebuilt_at_start"] = self.rebuilt_because
        return info


@dataclass
class RasaCircuit:
    """After a failed call, Rasa is skipped for ``cooldown_s``; then tried again."""

    cooldown_s: float = 15.0
    open_until: float = 0.0
    since: float | None = None  # when the current outage began (wall clock)
    reason: str | None = None

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def failed(self, reason: str) -> None:
        if self.since is None:
            self.since = time.time()
            log.warning("Rasa unavailable (%s): answering from the engine directly", reason)
        self.reason = reason
        self.open_until = time.monotonic() + self.cooldown_s

    def succeeded(self) -> None:
        if self.since is not None:
            log.info(
                "Rasa is back after %.0f s: chat goes through Rasa again", time.time() - self.since
            )
        self.since, self.reason, self.open_until = None, None, 0.0

    @property
    def degraded(self) -> bool:
        return self.since is not None
