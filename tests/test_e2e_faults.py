"""Faults in a real stack (Rasa, action server and API, started and supervised by the
launcher): the chat keeps answering with the same text when Rasa hangs, when the action
server is killed, and when Rasa is killed mid-conversation; the supervisor starts each
killed process again and the chat goes through Rasa again; a killed API comes back;
after the stack stops, none of its processes is left. Logs are JSON lines that tie the
API's request to the action it caused.

The tests run in file order on one stack (Rasa takes ~40 s to start) and each breaks a
little more of it; the last starts `madoguchi serve` itself and stops it with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.operations.launcher import Stack
from tests.conftest import running_stack, stack_home
from tests.test_e2e import say

pytestmark = pytest.mark.e2e
QUESTION = "国民健康保険料はコンビニで払えますか"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("faults") / "home"
    env = {"MADOGUCHI_RASA_TIMEOUT": "3", "MADOGUCHI_RASA_RETRY": "1"}
    with running_stack(home, env) as (settings, client, running):
        # The answer through Rasa, before anything breaks: every later path must match it.
        reference = say(client, QUESTION)
        assert "degraded" not in reference and reference["decision"] == "answer"
        yield settings, client, running, reference


def service(running: Stack, name: str):
    return next(s for s in running.services if s.name == name)


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_logs_are_json_lines_tied_by_the_request_id(stack):
    settings, client, _, _ = stack
    response = client.post(
        "/api/chat",
        json={"message": "粗大ごみを出したい"},
        headers={"X-Request-ID": "trace-0123456789"},
    )
    assert response.headers["x-request-id"] == "trace-0123456789"
    time.sleep(0.5)  # let the action server's log reach its file
    api = [
        line
        for line in json_lines(settings.home / "logs" / "api.log")
        if line.get("request_id") == "trace-0123456789"
    ]
    assert any(line.get("route") == "/api/chat" and line.get("status") == 200 for line in api)
    actions = [
        line
        for line in json_lines(settings.home / "logs" / "actions.log")
        if line.get("request_id") == "trace-0123456789"
    ]
    assert actions and actions[0]["service"] == "actions"
    assert "action_answer" in actions[0]["message"]


def test_a_hanging_rasa_is_bypassed_and_the_answer_is_the_same(stack):
    _, client, running, reference = stack
    rasa = service(running, "rasa").process
    os.killpg(rasa.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        reply = say(client, QUESTION)
        assert time.monotonic() - started < 10
        assert reply["degraded"] is True
        assert reply["replies"] == reference["replies"]
        health = client.get("/api/health").json()
        assert health["status"] == "degraded"
        assert health["components"]["chat"]["reason"].startswith("timeout")
    finally:
        os.killpg(rasa.pid, signal.SIGCONT)
    time.sleep(1.5)  # the retry interval: Rasa is tried again, and answers
    again = say(client, QUESTION)
    assert "degraded" not in again and again["replies"] == reference["replies"]
    assert client.get("/api/health").json()["components"]["chat"] == {"status": "ok"}


def wait_until_through_rasa(client, reference, since: float, timeout_s: float = 120.0) -> float:
    """Seconds from ``since`` (the kill) until a chat message is answered through Rasa
    again, with the same text: within two minutes of the kill."""
    while time.monotonic() - since < timeout_s:
        reply = say(client, QUESTION)
        if "degraded" not in reply:
            assert reply["replies"] == reference["replies"]
            return time.monotonic() - since
        assert reply["replies"] == reference["replies"]  # the engine, meanwhile, alike
        time.sleep(2.0)
    raise AssertionError(f"the chat did not go through Rasa again within {timeout_s:.0f} s")


def restarts(client) -> dict[str, float]:
    return {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("madoguchi_restarts_total{")
    }


def test_a_killed_action_server_is_bypassed_then_started_again(stack):
    _, client, running, reference = stack
    actions = service(running, "actions").process
    os.killpg(actions.pid, signal.SIGKILL)
    started = time.monotonic()
    reply = say(client, QUESTION)
    assert time.monotonic() - started < 2.0
    assert reply["degraded"] is True
    assert reply["replies"] == reference["replies"]
    health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    assert health["components"]["actions"]["status"] == "unreachable"
    assert any(reason.startswith("actions unreachable") for reason in health["reasons"])
    back = wait_until_through_rasa(client, reference, started)
    print(f"action server back, chat through Rasa again after {back:.0f} s")
    assert service(running, "actions").process.pid != actions.pid
    assert restarts(client)["actions"] == 1
    log = (running.settings.home / "logs" / "supervisor.log").read_text()
    assert "actions was killed by SIGKILL; starting it again in 1 s" in log


def test_rasa_killed_mid_conversation_the_next_message_is_answered_alike(stack):
    _, client, running, reference = stack
    first = say(client, "税金を払いたい")
    assert first["decision"] == "clarify" and "degraded" not in first
    rasa = service(running, "rasa").process
    os.killpg(rasa.pid, signal.SIGKILL)
    started = time.monotonic()
    chosen = say(client, first["replies"][0]["buttons"][0]["payload"], first["session_id"])
    assert time.monotonic() - started < 2.0
    assert chosen["degraded"] is True and chosen["decision"] == "answer"
    follow = say(client, QUESTION, first["session_id"])
    assert follow["replies"] == reference["replies"]
    deadline = time.monotonic() + 5  # the supervisor looks twice a second
    while True:
        health = client.get("/api/health").json()
        assert health["status"] == "degraded"
        said = [r for r in health["reasons"] if r.startswith("rasa unreachable")]
        if said and "it was killed by SIGKILL and is being started again" in said[0]:
            break
        assert time.monotonic() < deadline, health["reasons"]
        time.sleep(0.2)
    metrics = client.get("/metrics").text
    assert 'madoguchi_chat_decisions_total{decision="answer",path="engine"}' in metrics
    assert 'madoguchi_chat_decisions_total{decision="answer",path="rasa"}' in metrics
    back = wait_until_through_rasa(client, reference, started)
    print(f"Rasa back, chat through Rasa again after {back:.0f} s")
    assert restarts(client)["rasa"] == 1
    assert client.get("/api/health").json()["status"] == "ok"


def test_a_killed_api_is_started_again(stack):
    _, client, running, reference = stack
    api = service(running, "api").process
    os.killpg(api.pid, signal.SIGKILL)
    started = time.monotonic()
    while True:
        try:
            if client.get("/", timeout=2.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() - started < 60, "the pages did not answer again in 60 s"
        time.sleep(0.2)
    print(f"pages answer again {time.monotonic() - started:.1f} s after the API was killed")
    again = say(client, QUESTION)
    assert "degraded" not in again and again["replies"] == reference["replies"]
    assert restarts(client) == {"actions": 1, "api": 1, "rasa": 1}


def stack_processes(home) -> list[str]:
    """Processes whose environment names this stack's home (every child inherits it)."""
    marker = f"MADOGUCHI_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(f"{proc.name}: {(proc / 'cmdline').read_bytes()[:120]!r}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def test_after_stop_no_process_of_the_stack_is_left(stack):
    settings, _, running, _ = stack
    assert len(stack_processes(settings.home)) >= 3
    running.stop()
    assert stack_processes(settings.home) == []
    assert not (settings.home / "supervisor.json").exists()


def test_ctrl_c_on_madoguchi_serve_leaves_no_process(tmp_path):
    """``madoguchi serve`` as an operator runs it, on a stack of its own: Ctrl-C (SIGINT to
    serve alone, as a terminal sends it: the children lead their own sessions) stops
    the supervisor and every child, and serve exits 0."""
    settings = stack_home(tmp_path / "home")
    env = {
        **os.environ,
        "MADOGUCHI_HOME": str(settings.home),
        "MADOGUCHI_ENCODER": str(settings.encoder_path),
        "MADOGUCHI_API_PORT": str(settings.api_port),
        "MADOGUCHI_RASA_PORT": str(settings.rasa_port),
        "MADOGUCHI_ACTION_PORT": str(settings.action_port),
        "PYTHONUNBUFFERED": "1",
    }
    output = tmp_path / "serve.out"
    with output.open("wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "assistant.operations.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while "Madoguchi is running" not in output.read_text():
            assert serve.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(1.0)
        assert len(stack_processes(settings.home)) >= 4  # serve and its three children
        assert (settings.home / "supervisor.json").exists()
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=90) == 0, output.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert "stopping..." in output.read_text()
    assert stack_processes(settings.home) == []
    assert not (settings.home / "supervisor.json").exists()
