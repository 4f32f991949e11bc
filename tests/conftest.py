"""Shared fixtures: a fresh knowledge home per test (real SQLite, real encoder, real index).

The encoder is built once by `make setup` (MADOGUCHI_HOME/encoder); tests reuse it
read-only and put everything else in a temporary directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.operations.cli import main
from assistant.operations.config import PROJECT_ROOT, Settings

STARTER = PROJECT_ROOT / "knowledge" / "starter"
STARTER_COUNT = len(list(STARTER.glob("*.yaml")))


def built_encoder() -> Path:
    configured = os.environ.get("MADOGUCHI_ENCODER")
    home = Path(os.environ.get("MADOGUCHI_HOME") or PROJECT_ROOT / "var")
    path = Path(configured) if configured else home / "encoder"
    if not (path / "modules.json").is_file():
        pytest.fail(f"no encoder at {path}: run `make setup` first")
    return path


def built_rasa_model() -> Path:
    home = Path(os.environ.get("MADOGUCHI_HOME") or PROJECT_ROOT / "var")
    path = home / "rasa" / "models" / "madoguchi.tar.gz"
    if not path.is_file():
        pytest.fail(f"no trained Rasa model at {path}: run `make setup` first")
    return path


def make_settings(home: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"MADOGUCHI_HOME": str(home), "MADOGUCHI_ENCODER": str(built_encoder()), **env}
    )


PASSWORD = "correct horse battery staple"


def account(settings: Settings, name: str, role: str = "editor") -> None:
    """Make the account ``name`` with ``role`` (password PASSWORD) unless it exists."""
    from knowledge.accounts import AccountError, add_user, get_user
    from knowledge.store import open_db

    db = open_db(settings.database_path)
    try:
        try:
            get_user(db, name)
        except AccountError:
            add_user(db, name, role, PASSWORD)
    finally:
        db.close()


def bearer(settings: Settings, name: str, role: str = "editor") -> dict[str, str]:
    """Headers for an API client logged in as ``name`` (the account is made if missing),
    with a token issued by the accounts library as ``POST /api/auth/token`` would."""
    from knowledge.accounts import log_in
    from knowledge.store import open_db

    account(settings, name, role)
    db = open_db(settings.database_path)
    try:
        session = log_in(db, name, PASSWORD, client="tests", kind="token", lifetime_s=3600)
    finally:
        db.close()
    return {"Authorization": f"Bearer {session.token}"}


def editor(client, name: str = "suzuki") -> dict[str, str]:
    """Headers for ``client``'s app as the editor ``name``."""
    return bearer(client.app.state.settings, name, "editor")


def staff(client, name: str = "sato") -> dict[str, str]:
    """Headers for ``client``'s app as the staff member ``name``."""
    return bearer(client.app.state.settings, name, "staff")


def handoff(
    db,
    *turns: dict,
    session_id: str = "s",
    reason: str = "requested_human",
    candidates: list[dict] | None = None,
    page: str = "",
):
    """A ticket opened on real SQLite for a conversation of ``turns``, as a handoff does."""
    from knowledge.tickets import open_ticket

    return open_ticket(
        db,
        session_id=session_id,
        reason=reason,
        transcript=list(turns),
        candidates=candidates or [],
        page=page,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An empty knowledge home."""
    return make_settings(tmp_path / "home")


@pytest.fixture(scope="session")
def starter_template(tmp_path_factory) -> Path:
    """A home with the published starter entries and their index, built once per run;
    tests work on copies (an app over a fresh home would rebuild the index, ~10 s)."""
    from assistant.retrieval.engine import Engine
    from knowledge.io import import_entries
    from knowledge.store import open_db

    home = tmp_path_factory.mktemp("starter-template") / "home"
    settings = make_settings(home)
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    Engine.load(settings).db.close()  # the last connection: the WAL is checkpointed
    return home


def copy_home(template: Path, target: Path) -> Path:
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("*-shm", "*-wal", "*.lock"))
    return target


@pytest.fixture
def starter_settings(starter_template: Path, tmp_path: Path) -> Settings:
    """A knowledge home holding the published starter entries and their index."""
    return make_settings(copy_home(starter_template, tmp_path / "home"))


@pytest.fixture(scope="session")
def shared_engine(tmp_path_factory):
    """One engine over the starter entries, for read-only tests (loading costs ~2 s)."""
    from assistant.retrieval.engine import Engine
    from knowledge.io import import_entries
    from knowledge.store import open_db

    settings = make_settings(tmp_path_factory.mktemp("shared") / "home")
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    return Engine.load(settings)


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stack_home(home: Path, **settings_env: str) -> Settings:
    """``home`` with the starter entries, their index and the trained Rasa model, and
    free ports for the API, Rasa and the actions: ready for a stack to start."""
    from assistant.retrieval.engine import Engine
    from knowledge.io import import_entries
    from knowledge.store import open_db

    api, rasa, action = free_ports(3)
    settings = make_settings(
        home,
        MADOGUCHI_API_PORT=str(api),
        MADOGUCHI_RASA_PORT=str(rasa),
        MADOGUCHI_ACTION_PORT=str(action),
        **settings_env,
    )
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    Engine.load(settings)  # build the index once, before the servers start
    settings.rasa_model_path.parent.mkdir(parents=True)
    shutil.copy(built_rasa_model(), settings.rasa_model_path)
    return settings


@contextmanager
def running_stack(home: Path, env: dict[str, str] | None = None, **settings_env: str):
    """The starter entries in ``home``, then Rasa, the actions and the API on free ports,
    started by the launcher ``make run`` uses; yields (settings, client, stack)."""

    import httpx

    from assistant.operations.launcher import Stack

    settings = stack_home(home, **settings_env)
    api = settings.api_port
    # All test traffic comes from 127.0.0.1: one "client" for the chat's rate limit and
    # the tickets it may open.
    unlimited = {
        "MADOGUCHI_CHAT_RATE_PER_CLIENT": "100000",
        "MADOGUCHI_HANDOFF_RATE_PER_CLIENT": "100000",
    }
    stack = Stack(settings, env={**os.environ, **unlimited, **(env or {})})
    stack.start()
    try:
        yield settings, httpx.Client(base_url=f"http://127.0.0.1:{api}", timeout=60), stack
    finally:
        stack.stop()


@dataclass(frozen=True)
class Run:
    """What ``madoguchi ARGS`` did: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def madoguchi(monkeypatch, capsys):
    """``madoguchi ARGS`` over ``settings``'s home, run in this process by ``main(argv)``.

    stderr holds what a process of its own would print there: the warnings logged too
    (a process without logging configured prints them, as Python's last-resort handler
    does), and a usage error is exit status 2. The process's umask is restored after.
    """

    def run(settings, *args: str, env: dict[str, str] | None = None) -> Run:
        environment = {
            "MADOGUCHI_HOME": str(settings.home),
            "MADOGUCHI_ENCODER": str(settings.encoder_path),
            **(env or {}),
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()  # what earlier calls printed is theirs
        warnings = logging.StreamHandler(sys.stderr)  # the captured stderr
        warnings.setLevel(logging.WARNING)
        logging.getLogger().addHandler(warnings)
        umask = os.umask(0o077)
        os.umask(umask)
        try:
            code = main(list(args))
        except SystemExit as usage:  # argparse
            code = usage.code
        finally:
            logging.getLogger().removeHandler(warnings)
            os.umask(umask)
        printed = capsys.readouterr()
        return Run(code, printed.out, printed.err)

    return run
