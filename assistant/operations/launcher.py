"""Start the Rasa server, the action server and the API, keep them up, stop them all
together.

Used by ``madoguchi serve`` (``make run``) and by the end-to-end tests, so the tests run
the stack exactly as an operator does, supervision included (``assistant.operations.supervisor``:
a child that dies or hangs is started again while the others go on answering). Each
child logs to ``MADOGUCHI_HOME/logs``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from assistant.operations.config import PROJECT_ROOT, Settings
from assistant.operations.files import PRIVATE_UMASK, tighten
from assistant.operations.keys import INTERNAL_TOKEN_HEADER, internal_token, load_secret
from assistant.operations.retention import DailyPurge
from assistant.operations.supervisor import Policy, Supervisor, kill_group
from knowledge.store import open_db

RASA_START_TIMEOUT_S = 240.0


class StackError(RuntimeError):
    """A service did not start; the message names it and its log file."""


@dataclass
class Service:
    name: str
    command: list[str]
    health_url: str
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)


def rasa_python() -> str:
    """The Rasa environment's Python; Rasa runs as
    ``python -m assistant.conversation.rasa_server``."""
    configured = os.environ.get("MADOGUCHI_RASA_PYTHON")
    return configured or str(PROJECT_ROOT / ".venv-rasa" / "bin" / "python")


def write_rasa_files(settings: Settings) -> tuple[Path, Path]:
    """Endpoints (our action server, a SQLite tracker store) and credentials (REST).

    Conversations are kept in ``rasa/trackers.db``, so they survive a Rasa restart. The
    API masks personal numbers before Rasa sees a message, so none are stored there.
    Both files hold the internal token (Rasa shows it to the action server; the API
    shows it to Rasa's REST channel, ``assistant.conversation.rasa_channel``), so they are mode 600.
    """
    settings.rasa_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = json.dumps(internal_token(load_secret(settings.secret_path)))
    endpoints = settings.rasa_dir / "endpoints.yml"
    _write_private(
        endpoints,
        f'action_endpoint:\n  url: "{settings.action_url}/webhook"\n'
        f"  headers:\n    {INTERNAL_TOKEN_HEADER}: {token}\n"
        "tracker_store:\n"
        "  type: SQL\n"
        "  dialect: sqlite\n"
        f"  db: {json.dumps(str(settings.rasa_dir / 'trackers.db'))}\n",
    )
    credentials = settings.rasa_dir / "credentials.yml"
    _write_private(
        credentials, f"assistant.conversation.rasa_channel.GuardedRestInput:\n  token: {token}\n"
    )
    # Write-ahead logging (a setting kept in the file): a commit appends to the log
    # instead of rewriting pages with a rollback journal, for each of Rasa's two saves
    # per message.
    with sqlite3.connect(settings.rasa_dir / "trackers.db") as trackers:
        trackers.execute("PRAGMA journal_mode = WAL")
    return endpoints, credentials


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older file kept its mode
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


class Stack:
    def __init__(
        self, settings: Settings, env: dict[str, str] | None = None, policy: Policy | None = None
    ):
        self.settings = settings
        self.policy = policy or Policy()
        self.supervisor: Supervisor | None = None
        self.env = dict(os.environ if env is None else env)
        self.env.update(
            {
                "MADOGUCHI_HOME": str(settings.home),
                "MADOGUCHI_ENCODER": str(settings.encoder_path),
                "MADOGUCHI_API_PORT": str(settings.api_port),
                "MADOGUCHI_RASA_PORT": str(settings.rasa_port),
                "MADOGUCHI_ACTION_PORT": str(settings.action_port),
                "MADOGUCHI_CITY": str(settings.city_path),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "PYTHONUNBUFFERED": "1",
            }
        )
        # The API and the actions log JSON lines (assistant.operations.logs) unless told otherwise.
        self.env.setdefault("MADOGUCHI_LOG_FORMAT", "json")
        # One thread each for the numeric libraries (FAISS, PyTorch, TensorFlow): the
        # services share the machine's cores and each request is small; more threads
        # per request only made them wait for each other.
        for name in (
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "TF_INTER_OP_PARALLELISM_THREADS",
            "TF_INTRA_OP_PARALLELISM_THREADS",
        ):
            self.env.setdefault(name, "1")
        logs = settings.home / "logs"
        if not settings.rasa_model_path.is_file():
            raise StackError(
                f"no trained Rasa model at {settings.rasa_model_path}: run `make setup`"
            )
        if not Path(rasa_python()).is_file():
            raise StackError(
                f"no Rasa environment ({rasa_python()} is missing): run `make setup`, "
                "or point MADOGUCHI_RASA_PYTHON at the Python that has rasa 3.6"
            )
        endpoints, credentials = write_rasa_files(settings)
        host = self.env.get("MADOGUCHI_API_HOST", "127.0.0.1")
        self.services = [
            Service(
                "actions",
                [
                    sys.executable,
                    "-m",
                    "assistant.conversation.action_server",
                    "--actions",
                    "assistant.conversation.actions",
                    "--port",
                    str(settings.action_port),
                ],
                f"{settings.action_url}/health",
                logs / "actions.log",
            ),
            Service(
                "rasa",
                [
                    rasa_python(),
                    "-m",
                    "assistant.conversation.rasa_server",
                    "run",
                    "--model",
                    str(settings.rasa_model_path),
                    "--endpoints",
                    str(endpoints),
                    "--credentials",
                    str(credentials),
                    "--port",
                    str(settings.rasa_port),
                    "--interface",
                    settings.bind_internal,
                ],
                f"{settings.rasa_url}/",
                logs / "rasa.log",
            ),
            Service(
                "api",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.main:app",
                    "--host",
                    host,
                    "--port",
                    str(settings.api_port),
                    # No version banner; idle keep-alive connections closed soon; at most
                    # this many connections at once (503 beyond); request heads of at
                    # most 16 KiB. Slow clients are the reverse proxy's to time out
                    # (docs/operations.md).
                    "--no-server-header",
                    "--timeout-keep-alive",
                    str(settings.api_keep_alive_s),
                    "--limit-concurrency",
                    str(settings.api_concurrency),
                    "--h11-max-incomplete-event-size",
                    str(16 * 1024),
                ],
                f"http://127.0.0.1:{settings.api_port}/api/health",
                logs / "api.log",
            ),
        ]

    def check_ports(self) -> None:
        """Fail before starting anything if a port is taken (say, by an earlier run)."""
        internal = self.settings.bind_internal
        for name, host, port, setting in (
            ("api", "127.0.0.1", self.settings.api_port, "MADOGUCHI_API_PORT"),
            ("rasa", internal, self.settings.rasa_port, "MADOGUCHI_RASA_PORT"),
            ("actions", internal, self.settings.action_port, "MADOGUCHI_ACTION_PORT"),
        ):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError:
                    raise StackError(
                        f"port {port} for {name} is already in use; stop what holds it "
                        f"or choose another with {setting}"
                    ) from None

    def launch(self, service: Service) -> None:
        """Start one service's process, its output appended to its log (mode 600); what
        it writes is private to this user too (umask 077)."""
        service.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(service.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab") as log:
            service.process = subprocess.Popen(
                service.command,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop the children in order
                umask=PRIVATE_UMASK,
            )

    def start(self, timeout_s: float = RASA_START_TIMEOUT_S) -> None:
        """Start every service, wait until each answers its health check, then supervise
        them. A service that cannot start at all is an error: the stack is stopped."""
        self.check_ports()
        if changed := tighten(self.settings.home):
            print(
                f"  made {changed} files and folders under {self.settings.home} private "
                "to this user (they were readable by group or others)",
                flush=True,
            )
        for service in self.services:
            self.launch(service)
        self.wait_healthy(self.services, timeout_s)
        self.warm_up()
        self.supervisor = Supervisor(
            self.services, self.launch, self.settings.home, self.policy, self._back
        )
        self.supervisor.start()

    def _back(self, service: Service) -> None:
        """A restarted Rasa or action server warms up before residents reach it (the
        action server loads its engine on the first action)."""
        if service.name in ("rasa", "actions"):
            self.warm_up()

    def warm_up(self) -> None:
        """One message through Rasa, so the first resident does not wait while the
        action server loads its engine and Rasa runs its model for the first time."""
        started = time.monotonic()
        token = internal_token(load_secret(self.settings.secret_path))
        try:
            httpx.post(
                f"{self.settings.rasa_url}/webhooks/rest/webhook",
                json={"sender": "madoguchi-warm-up", "message": "こんにちは"},
                headers={INTERNAL_TOKEN_HEADER: token},
                timeout=60.0,
            )
        except httpx.HTTPError as error:
            print(f"  warm-up failed ({type(error).__name__}); going on", flush=True)
            return
        print(f"  warmed up ({time.monotonic() - started:.1f} s)", flush=True)

    def wait_healthy(self, services: list[Service], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(services)
        started = time.monotonic()
        while pending:
            for service in list(pending):
                if service.process.poll() is not None:
                    self.stop()
                    raise StackError(
                        f"{service.name} exited with status {service.process.returncode}; "
                        f"see {service.log_path}"
                    )
                try:
                    if httpx.get(service.health_url, timeout=2.0).status_code == 200:
                        pending.remove(service)
                        print(
                            f"  {service.name} ready ({time.monotonic() - started:.0f} s)",
                            flush=True,
                        )
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                self.stop()
                raise StackError(f"not healthy after {timeout_s:.0f} s: {names}")
            if pending:
                time.sleep(1.0)

    def stop(self) -> None:
        """Stop supervising, SIGTERM every child's process group (API first, Rasa, then
        actions), then SIGKILL what is left of each group."""
        if self.supervisor is not None:
            self.supervisor.stop()
        for service in reversed(self.services):
            if service.process and service.process.poll() is None:
                try:
                    os.killpg(service.process.pid, signal.SIGTERM)
                    os.killpg(service.process.pid, signal.SIGCONT)  # a stopped one must run
                except ProcessLookupError:  # it has just exited
                    pass
        for service in reversed(self.services):
            if service.process is None:
                continue
            try:
                service.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            kill_group(service.process)  # stragglers, and anything the child started

    def urls(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.settings.api_port}"
        return {
            "住民向けチャット (resident chat)": f"{base}/",
            "職員向け (staff console)": f"{base}/staff",
            "編集者向け (editor console)": f"{base}/editor",
            "埋め込み用スクリプト (widget)": f"{base}/widget.js",
            "API ドキュメント (API docs)": f"{base}/docs"
            if self.settings.docs_assets
            else f"{base}/openapi.json",
        }

    def _has_accounts(self) -> bool:
        db = open_db(self.settings.database_path)
        try:
            return bool(db["users"].count)
        finally:
            db.close()

    def run_forever(self) -> int:
        # SIGTERM (from a service manager) stops us like Ctrl-C does. SIGINT is set
        # explicitly because a shell starting us in the background leaves it ignored.
        def interrupt(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGINT, interrupt)
        print("starting Madoguchi (Rasa takes about a minute)...", flush=True)
        try:
            self.start()
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # asked to stop while starting: not a failure
            self.stop()
            return 0
        print("Madoguchi is running:")
        for label, url in self.urls().items():
            print(f"  {label}: {url}")
        if not self._has_accounts():
            print(
                "  no staff or editor accounts yet: add one with "
                "`.venv/bin/madoguchi user add NAME --role admin`"
            )
        print(f"logs: {self.settings.home / 'logs'}   stop: Ctrl-C", flush=True)
        purge = DailyPurge(self.settings)  # resident data past its retention, once a day
        try:
            while True:  # the supervisor's threads do the watching
                purge.tick()
                time.sleep(60)
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0
        finally:
            self.stop()
