"""Faults in a real stack (Rasa, action server and API, started by the launcher): the
chat keeps answering with the same text when Rasa hangs, when the action server is
gone, and when Rasa stops mid-conversation; logs are JSON lines that tie the API's
request to the action it caused.

The tests run in file order on one stack and each breaks a little more of it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from assistant.config import PROJECT_ROOT
from assistant.engine import Engine
from assistant.launcher import Stack
from knowledge.store import open_db
from tests.conftest import STARTER, built_rasa_model, make_settings
from tests.test_e2e import free_ports, say

pytestmark = pytest.mark.e2e
QUESTION = "国民健康保険料はコンビニで払えますか"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from knowledge.io import import_entries

    home = tmp_path_factory.mktemp("faults") / "home"
    api, rasa, action = free_ports(3)
    settings = make_settings(
        home,
        MADOGUCHI_API_PORT=str(api),
        MADOGUCHI_RASA_PORT=str(rasa),
        MADOGUCHI_ACTION_PORT=str(action),
    )
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    Engine.load(settings)
    settings.rasa_model_path.parent.mkdir(parents=True)
    shutil.copy(built_rasa_model(), settings.rasa_model_path)
    env = dict(os.environ, MADOGUCHI_RASA_TIMEOUT="3", MADOGUCHI_RASA_RETRY="1")
    running = Stack(settings, env=env)
    running.start()
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{api}", timeout=60)
        # The answer through Rasa, before anything breaks: every later path must match it.
        reference = say(client, QUESTION)
        assert "degraded" not in reference and reference["decision"] == "answer"
        yield settings, client, running, reference
    finally:
        for service in running.services:  # a stopped process must run to be stopped
            if service.process and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGCONT)
        running.stop()


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


def restart(running: Stack, name: str) -> None:
    """Start a stopped service again as the launcher did, and wait for its health."""
    stopped = service(running, name)
    with open(stopped.log_path, "ab") as log:
        stopped.process = subprocess.Popen(
            stopped.command,
            cwd=PROJECT_ROOT,
            env=running.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(stopped.health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"{name} did not come back")


def test_without_the_action_server_the_engine_answers(stack):
    _, client, running, reference = stack
    actions = service(running, "actions").process
    os.killpg(actions.pid, signal.SIGTERM)
    actions.wait(timeout=15)
    reply = say(client, QUESTION)
    assert reply["degraded"] is True
    assert reply["replies"] == reference["replies"]
    health = client.get("/api/health").json()
    assert health["components"]["actions"]["status"] == "unreachable"
    assert any(reason.startswith("actions unreachable") for reason in health["reasons"])
    restart(running, "actions")
    again = say(client, QUESTION)
    assert "degraded" not in again and again["replies"] == reference["replies"]


def test_rasa_stopped_mid_conversation_the_next_message_is_answered_alike(stack):
    _, client, running, reference = stack
    first = say(client, "税金を払いたい")
    assert first["decision"] == "clarify" and "degraded" not in first
    rasa = service(running, "rasa").process
    os.killpg(rasa.pid, signal.SIGTERM)
    rasa.wait(timeout=30)
    chosen = say(client, first["replies"][0]["buttons"][0]["payload"], first["session_id"])
    assert chosen["degraded"] is True and chosen["decision"] == "answer"
    follow = say(client, QUESTION, first["session_id"])
    assert follow["replies"] == reference["replies"]
    metrics = client.get("/metrics").text
    assert 'madoguchi_chat_decisions_total{decision="answer",path="engine"}' in metrics
    assert 'madoguchi_chat_decisions_total{decision="answer",path="rasa"}' in metrics
