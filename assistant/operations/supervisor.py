"""Keep the stack up: a child that exits or stops answering its health check is started
again with backoff while the others go on; one that keeps failing is given up.

One thread watches each child, so a hung Rasa never delays noticing that the action
server died. Every exit is logged (the exit status, or the signal that killed it) to
``madoguchi serve``'s output and to ``MADOGUCHI_HOME/logs/supervisor.log``. The state of
each child is written to ``MADOGUCHI_HOME/supervisor.json`` at every change: the API is
one of the children, so /api/health and /metrics learn the restarts from that file, not
from the API's own memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

STATE_FILE = "supervisor.json"
# How long kill_group waits for the rest of a killed group to be reaped.
GROUP_GONE_TIMEOUT_S = 5.0


class Supervised(Protocol):
    name: str
    health_url: str
    log_path: Path
    process: subprocess.Popen | None


@dataclass(frozen=True)
class Policy:
    # Restart delays 1, 2, 4 … seconds, at most backoff_max_s; a child that failed
    # give_up_after times within give_up_window_s is not started again.
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    give_up_after: int = 5
    give_up_window_s: float = 600.0
    # A running child is asked for its health every check_every_s; after unresponsive_after
    # failed checks in a row (about 30 s) it is killed and restarted. The API's own health
    # asks Rasa and the action server with 2 s timeouts, hence 5 s here.
    check_every_s: float = 5.0
    health_timeout_s: float = 5.0
    unresponsive_after: int = 6
    # Rasa answers about 40 s after it starts, longer on a busy machine.
    start_timeout_s: float = 240.0


@dataclass
class Watch:
    """What the supervisor knows of one child."""

    state: str = "running"  # running | restarting | starting | given_up
    restarts: int = 0
    last_exit: str | None = None
    since: float = field(default_factory=time.time)  # when the state began (wall clock)
    failures: deque[float] = field(default_factory=deque)  # monotonic times, recent only
    started: float = 0.0  # monotonic time of the last start
    kill_reason: str | None = None  # why the supervisor itself killed it
    misses: int = 0  # failed health checks in a row

    def public(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "since": dt.datetime.fromtimestamp(self.since, dt.UTC).isoformat(timespec="seconds"),
            "recent_failures": len(self.failures),
        }


def describe_exit(returncode: int) -> str:
    """``exited with status 1`` or ``was killed by SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it leads its own session), so nothing it
    started keeps the port; then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone already
        pass
    process.wait()
    # What the child started dies too, but is reaped by init a moment later (on a loaded
    # machine, after this returned): wait, briefly, until the group is empty.
    deadline = time.monotonic() + GROUP_GONE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)


class Supervisor:
    def __init__(
        self,
        services: list[Supervised],
        launch: Callable[[Supervised], None],
        home: Path,
        policy: Policy = Policy(),
        on_back: Callable[[Supervised], None] | None = None,
    ):
        self.services = services
        self.launch = launch
        self.on_back = on_back  # called once a restarted child answers again
        self.policy = policy
        self.state_path = home / STATE_FILE
        self.log_path = home / "logs" / "supervisor.log"
        self.watches = {service.name: Watch() for service in services}
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # held while starting a child and writing the state
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._write_state()
        for service in self.services:
            thread = threading.Thread(
                target=self._watch, args=(service,), name=f"supervise-{service.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """No child is started again once this returns; the caller then stops them."""
        with self._lock:
            self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self.policy.health_timeout_s + 1)
        self.state_path.unlink(missing_ok=True)

    def say(self, message: str) -> None:
        stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        line = f"{stamp} supervisor: {message}"
        print(line, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    # -- one thread per child -------------------------------------------------------

    def _watch(self, service: Supervised) -> None:
        watch = self.watches[service.name]
        policy = self.policy
        next_check = time.monotonic() + policy.check_every_s
        while not self._stopping.is_set():
            returncode = service.process.poll()
            if returncode is not None:
                if not self._restart(service, watch, returncode):
                    return
                continue
            now = time.monotonic()
            if watch.state == "starting":
                if self._healthy(service):
                    self._set(watch, "running")
                    self.say(
                        f"{service.name} is back (restart {watch.restarts}, "
                        f"{now - watch.started:.0f} s after it was started)"
                    )
                    if self.on_back is not None:
                        self.on_back(service)
                    next_check = time.monotonic() + policy.check_every_s
                elif now - watch.started > policy.start_timeout_s:
                    watch.kill_reason = (
                        f"did not answer its health check within {policy.start_timeout_s:.0f} s"
                    )
                    kill_group(service.process)
                    continue
            elif now >= next_check:
                next_check = now + policy.check_every_s
                watch.misses = 0 if self._healthy(service) else watch.misses + 1
                if watch.misses >= policy.unresponsive_after:
                    silent = watch.misses * policy.check_every_s
                    watch.kill_reason = f"stopped answering its health check ({silent:.0f} s)"
                    watch.misses = 0
                    self.say(f"{service.name} {watch.kill_reason}: killing it")
                    kill_group(service.process)
                    continue
            self._stopping.wait(1.0 if watch.state == "starting" else 0.5)

    def _healthy(self, service: Supervised) -> bool:
        try:
            reply = httpx.get(service.health_url, timeout=self.policy.health_timeout_s)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    def _restart(self, service: Supervised, watch: Watch, returncode: int) -> bool:
        """The child has exited: log it, then start it again after the backoff, or give
        it up. False when this thread is done (given up, or the stack is stopping)."""
        policy = self.policy
        kill_group(service.process)  # whatever it started goes with it
        reason = describe_exit(returncode)
        if watch.kill_reason:
            reason = f"{watch.kill_reason}; it {reason}"
            watch.kill_reason = None
        watch.last_exit = reason
        now = time.monotonic()
        watch.failures.append(now)
        while watch.failures and now - watch.failures[0] > policy.give_up_window_s:
            watch.failures.popleft()
        failed = len(watch.failures)
        if failed >= policy.give_up_after:
            self._set(watch, "given_up")
            self.say(
                f"{service.name} {reason}; it failed {failed} times in "
                f"{policy.give_up_window_s / 60:.0f} minutes, so it is not started again "
                f"(the rest keeps running). See {service.log_path}; once it is fixed, "
                "restart `madoguchi serve`"
            )
            return False
        delay = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (failed - 1))
        self._set(watch, "restarting")
        self.say(
            f"{service.name} {reason}; starting it again in {delay:g} s (see {service.log_path})"
        )
        if self._stopping.wait(delay):
            return False
        with self._lock:
            if self._stopping.is_set():
                return False
            self.launch(service)
            watch.restarts += 1
            watch.started = time.monotonic()
            watch.state, watch.since = "starting", time.time()
            self._write_state_locked()
        return True

    # -- the state file ---------------------------------------------------------------

    def _set(self, watch: Watch, state: str) -> None:
        with self._lock:
            watch.state, watch.since = state, time.time()
            self._write_state_locked()

    def _write_state(self) -> None:
        with self._lock:
            self._write_state_locked()

    def _write_state_locked(self) -> None:
        if self._stopping.is_set():
            return
        state = {
            "supervisor_pid": os.getpid(),
            "services": {name: watch.public() for name, watch in self.watches.items()},
        }
        partial = self.state_path.with_suffix(".tmp")
        # Mode 600 whatever the process's umask (a supervisor started from a library).
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(json.dumps(state, indent=1))
        os.chmod(partial, 0o600)  # an older .tmp keeps its mode through O_CREAT
        partial.replace(self.state_path)  # readers never see half a file


def read_state(home: Path) -> dict[str, dict[str, Any]] | None:
    """Each supervised child's state, or None when no supervisor is running (the API
    started by hand, or a file left by a supervisor that was killed)."""
    try:
        state = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        os.kill(int(state["supervisor_pid"]), 0)
        return dict(state["services"])
    except PermissionError:  # alive, under another user
        return dict(state["services"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
