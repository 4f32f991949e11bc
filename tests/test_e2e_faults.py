"""Faults in a real stack (Rasa, action server and API, started by the launcher): the
chat keeps answering with the same text when Rasa hangs, when the action server is
gone, and when Rasa stops mid-conversation; logs are JSON lines that tie the API's
request to the action it caused.

The tests run in file order on one stack and each breaks a little more of it.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from assistant.launcher import Stack
from tests.conftest import running_stack
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
    running.restart("actions")
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
