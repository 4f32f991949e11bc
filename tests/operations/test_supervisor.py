"""The supervisor over real processes (small Python servers and a program that keeps
crashing), on a fast policy; the real stack under it is in test_e2e_faults.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from assistant.operations.supervisor import Policy, Supervisor, describe_exit, read_state
from tests.conftest import free_ports, make_settings

FAST = Policy(
    backoff_base_s=0.1,
    backoff_max_s=0.4,
    give_up_after=5,
    give_up_window_s=600,
    check_every_s=0.2,
    health_timeout_s=0.5,
    unresponsive_after=3,
    start_timeout_s=30,
)


@dataclass
class Child:
    name: str
    command: list[str]
    health_url: str
    log_path: Path
    process: subprocess.Popen | None = None


def launch(child: Child) -> None:
    child.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(child.log_path, "ab") as log:
        child.process = subprocess.Popen(
            child.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(condition, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s")


@pytest.fixture
def supervised(starter_settings):
    """``rasa``: a small HTTP server (healthy); ``actions``: a program that exits with
    status 3 at once, again and again."""
    home = starter_settings.home
    port, closed = free_ports(2)
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    crashing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    children = [
        Child("rasa", server, f"http://127.0.0.1:{port}/", home / "logs" / "rasa.log"),
        Child("actions", crashing, f"http://127.0.0.1:{closed}/", home / "logs" / "actions.log"),
    ]
    for child in children:
        launch(child)
    supervisor = Supervisor(children, launch, home, FAST)
    supervisor.start()
    try:
        yield starter_settings, supervisor, {child.name: child for child in children}
    finally:
        supervisor.stop()
        for child in children:
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()


def test_exits_are_restarted_with_backoff_then_given_up_and_the_rest_kept(supervised):
    settings, supervisor, children = supervised
    crashing = wait_for(
        lambda: (read_state(settings.home) or {}).get("actions", {}).get("state") == "given_up"
    )
    assert crashing
    state = read_state(settings.home)
    assert state["actions"]["restarts"] == 4 and state["actions"]["recent_failures"] == 5
    assert state["actions"]["last_exit"] == "exited with status 3"
    assert state["rasa"] == {**state["rasa"], "state": "running", "restarts": 0}
    log = (settings.home / "logs" / "supervisor.log").read_text()
    delays = re.findall(r"actions exited with status 3; starting it again in ([\d.]+ s)", log)
    assert delays == ["0.1 s", "0.2 s", "0.4 s", "0.4 s"]  # doubling, capped
    assert "actions exited with status 3; it failed 5 times in 10 minutes" in log
    assert children["rasa"].process.poll() is None  # the rest keeps running

    # A kill (an out-of-memory kill, say) is logged with its signal and restarted.
    first = children["rasa"].process
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: children["rasa"].process is not first)
    wait_for(lambda: read_state(settings.home)["rasa"]["state"] == "running")
    assert read_state(settings.home)["rasa"]["restarts"] == 1
    log = (settings.home / "logs" / "supervisor.log").read_text()
    assert "rasa was killed by SIGKILL; starting it again in 0.1 s" in log
    assert "rasa is back (restart 1" in log


def test_a_hung_process_is_killed_and_started_again(supervised):
    settings, _, children = supervised
    hung = children["rasa"].process
    os.kill(hung.pid, signal.SIGSTOP)
    wait_for(lambda: children["rasa"].process is not hung)
    assert hung.poll() == -signal.SIGKILL
    wait_for(lambda: read_state(settings.home)["rasa"]["state"] == "running")
    log = (settings.home / "logs" / "supervisor.log").read_text()
    assert "rasa stopped answering its health check (1 s): killing it" in log
    assert "rasa stopped answering its health check (1 s); it was killed by SIGKILL" in log


def test_health_and_metrics_report_what_the_supervisor_knows(supervised):
    settings, _, _ = supervised
    wait_for(lambda: read_state(settings.home)["actions"]["state"] == "given_up")
    app_settings = make_settings(
        settings.home, MADOGUCHI_RASA_PORT=str(free_ports(1)[0]), MADOGUCHI_ACTION_PORT="1"
    )
    # From this machine: health's details are for staff and local callers only.
    with TestClient(create_app(app_settings), client=("127.0.0.1", 50000)) as client:
        health = client.get("/api/health").json()
        assert health["status"] == "degraded"
        supervisor = health["components"]["supervisor"]
        assert supervisor["status"] == "degraded"
        assert supervisor["services"]["actions"]["state"] == "given_up"
        assert (
            "actions failed too often and is not started again (last: it exited with status "
            "3); see logs/actions.log, fix it, then restart `madoguchi serve`"
        ) in health["reasons"]
        metrics = client.get("/metrics").text
    assert 'madoguchi_restarts_total{component="actions"} 4.0' in metrics
    assert 'madoguchi_restarts_total{component="rasa"} 0.0' in metrics
    assert 'madoguchi_component_given_up{component="actions"} 1.0' in metrics
    assert 'madoguchi_component_up{component="rasa"} 1.0' in metrics


def test_no_state_is_read_without_a_live_supervisor(tmp_path):
    (tmp_path / "supervisor.json").write_text('{"supervisor_pid": 999999999, "services": {}}')
    assert read_state(tmp_path) is None  # left behind by a supervisor that was killed
    assert read_state(tmp_path / "nowhere") is None


def test_exits_are_described_by_status_or_signal():
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-signal.SIGTERM) == "was killed by SIGTERM"
