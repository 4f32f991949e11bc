"""When parts fail, the chat still answers: the API in-process over a real database,
encoder and index, with Rasa down (nothing listening), slow (a listener that never
replies), or broken (it answers nothing). Through a real Rasa server: test_e2e_faults.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.service import EngineHolder
from assistant.conversation import dialogue
from knowledge.store import open_db
from knowledge.tickets import get_ticket
from tests.conftest import STARTER_COUNT, bearer, make_settings

QUESTION = "粗大ごみを出したい"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settings_for(home, rasa_port: int, action_port: int | None = None, **env: str):
    return make_settings(
        home,
        MADOGUCHI_RASA_PORT=str(rasa_port),
        MADOGUCHI_ACTION_PORT=str(action_port or rasa_port),
        **env,
    )


def local(app) -> TestClient:
    """A client on this machine: it sees /metrics and health's reasons (api.routes.health)."""
    return TestClient(app, client=("127.0.0.1", 50000))


@pytest.fixture
def client(starter_settings):
    with local(create_app(settings_for(starter_settings.home, free_port()))) as client:
        client.headers.update(bearer(starter_settings, "sato", "staff"))  # staff lookups
        yield client


def chat(client: TestClient, message: str, session_id: str | None = None) -> dict:
    body = {"message": message, "page": "https://www.example.lg.jp/kurashi/"}
    body |= {"session_id": session_id} if session_id else {}
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_without_rasa_an_inquiry_gets_the_same_entry_and_text_as_the_staff_lookup(client):
    reply = chat(client, QUESTION)
    assert reply["degraded"] is True
    assert reply["decision"] == "answer"
    staff = client.get("/api/answers", params={"q": QUESTION}).json()["results"][0]
    answer, contact, feedback = reply["replies"]
    assert (answer["entry_id"], answer["revision"]) == (staff["entry_id"], staff["revision"])
    assert answer["text"] == staff["answer"]  # byte for byte
    assert contact["text"] == f"お問い合わせ先：{staff['contact']}"
    assert feedback["text"] == dialogue.FEEDBACK_PROMPT
    assert [b["title"] for b in feedback["buttons"]] == [dialogue.SOLVED, dialogue.NOT_SOLVED]


def test_the_degraded_answer_is_what_the_rasa_action_says(client, starter_settings, monkeypatch):
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from assistant.conversation.actions import runtime
    from assistant.conversation.actions.answer import ActionAnswer

    monkeypatch.setenv("MADOGUCHI_HOME", str(starter_settings.home))
    monkeypatch.setenv("MADOGUCHI_ENCODER", str(starter_settings.encoder_path))
    runtime.settings.cache_clear()
    runtime.engine.cache_clear()
    try:
        latest = {"text": QUESTION, "intent": {"name": "inquiry"}, "entities": []}
        tracker = Tracker("s-1", {}, latest, [], False, None, {}, "rest")
        dispatcher = CollectingDispatcher()
        ActionAnswer().run(dispatcher, tracker, {})
    finally:
        runtime.settings.cache_clear()
        runtime.engine.cache_clear()
    through_rasa = [m["custom"]["madoguchi"]["text"] for m in dispatcher.messages]
    degraded = [r["text"] for r in chat(client, QUESTION)["replies"]]
    assert degraded == through_rasa


def test_without_rasa_clarify_then_a_button_or_a_typed_choice_answers(client):
    reply = chat(client, "税金を払いたい")
    assert reply["decision"] == "clarify"
    buttons = reply["replies"][0]["buttons"]
    assert buttons[-1] == {"title": dialogue.NONE_OF_THESE, "payload": "/none_of_these"}
    chosen = chat(client, buttons[1]["payload"], reply["session_id"])
    assert chosen["decision"] == "answer"
    assert (
        buttons[1]["payload"] == f'/choose_entry{{"entry_id":"{chosen["replies"][0]["entry_id"]}"}}'
    )

    again = chat(client, "税金を払いたい")
    typed = chat(client, "3番目", again["session_id"])
    third = again["replies"][0]["buttons"][2]["payload"]
    assert third == f'/choose_entry{{"entry_id":"{typed["replies"][0]["entry_id"]}"}}'


def test_without_rasa_none_of_these_hands_off_with_what_was_offered(client, starter_settings):
    offered = chat(client, "税金を払いたい")
    assert offered["decision"] == "clarify"
    refused = chat(client, "/none_of_these", offered["session_id"])
    assert refused["decision"] == "handoff"
    ticket = get_ticket(open_db(starter_settings.database_path), refused["handoff_id"])
    titles = [b["title"] for b in offered["replies"][0]["buttons"][:3]]
    assert ticket.reason == "none_of_these"
    assert [c["title"] for c in ticket.candidates[:3]] == titles
    assert all(c["score"] > 0 for c in ticket.candidates)


def test_without_rasa_two_failed_turns_hand_off_with_the_whole_conversation(
    client, starter_settings
):
    first = chat(client, "プールは何時まで泳げますか")
    assert first["decision"] == "rephrase"
    assert first["replies"][0]["text"] == dialogue.REPHRASE
    session = first["session_id"]
    second = chat(client, "温水プールで泳ぎたい", session)
    assert second["decision"] == "handoff"
    ticket = get_ticket(open_db(starter_settings.database_path), second["handoff_id"])
    assert ticket.reason == "two_failed_turns"
    assert ticket.page == "https://www.example.lg.jp/kurashi/"
    texts = [(turn["role"], turn["text"]) for turn in ticket.transcript]
    assert texts[:3] == [
        ("resident", "プールは何時まで泳げますか"),
        ("assistant", dialogue.REPHRASE),
        ("resident", "温水プールで泳ぎたい"),
    ]
    assert texts[-1] == ("assistant", second["replies"][-1]["text"])
    # A person has it now: the assistant is silent, the message goes to the ticket.
    silent = chat(client, "よろしくお願いします", session)
    assert silent["replies"] == [] and silent["handoff_id"] == ticket.id


def test_without_rasa_a_plain_request_for_a_person_hands_off(client, starter_settings):
    reply = chat(client, "職員の方と話したいです")
    assert reply["decision"] == "handoff"
    ticket = get_ticket(open_db(starter_settings.database_path), reply["handoff_id"])
    assert ticket.reason == "requested_human"


def test_without_rasa_a_question_about_staff_is_not_a_request_for_a_person(client):
    reply = chat(client, "市の職員採用試験の日程は？")
    assert reply["decision"] != "handoff" and "handoff_id" not in reply


def test_without_rasa_negative_feedback_is_recorded_and_hands_off(client, starter_settings):
    answered = chat(client, QUESTION)
    entry_id = answered["replies"][0]["entry_id"]
    payload = answered["replies"][-1]["buttons"][1]["payload"]
    reply = chat(client, payload, answered["session_id"])
    assert reply["decision"] == "handoff"
    db = open_db(starter_settings.database_path)
    feedback = list(db["feedback"].rows)
    assert [(f["entry_id"], f["helpful"]) for f in feedback] == [(entry_id, 0)]
    assert feedback[0]["revision"] == answered["replies"][0]["revision"]
    ticket = get_ticket(db, reply["handoff_id"])
    assert ticket.reason == "negative_feedback"
    assert ticket.candidates[0]["entry_id"] == entry_id


def test_health_and_metrics_say_the_chat_is_degraded(client):
    chat(client, QUESTION)
    chat(client, "税金を払いたい")  # within the cool-down: Rasa is not tried again
    health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    assert health["components"]["chat"]["status"] == "degraded"
    assert health["components"]["chat"]["reason"].startswith("unreachable")
    metrics = client.get("/metrics").text
    assert 'madoguchi_rasa_failures_total{kind="unreachable"} 1.0' in metrics
    assert 'madoguchi_chat_decisions_total{decision="answer",path="engine"} 1.0' in metrics
    assert 'madoguchi_chat_decisions_total{decision="clarify",path="engine"} 1.0' in metrics
    assert "madoguchi_chat_degraded 1.0" in metrics
    assert f"madoguchi_index_entries {STARTER_COUNT}.0" in metrics
    assert "madoguchi_knowledge_revision 1.0" in metrics
    assert "madoguchi_handoffs_open 0.0" in metrics
    assert (
        'madoguchi_http_requests_total{method="POST",route="/api/chat",status="200"} 2.0' in metrics
    )


class Silent:
    """A listener that accepts connections and never answers: a Rasa that hangs."""

    def __enter__(self) -> int:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        return self.socket.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.socket.close()


def test_a_rasa_that_does_not_answer_in_time_is_bypassed(starter_settings):
    with Silent() as port:
        settings = settings_for(
            starter_settings.home, port, free_port(), MADOGUCHI_RASA_TIMEOUT="0.5"
        )
        with local(create_app(settings)) as client:
            started = time.monotonic()
            reply = chat(client, QUESTION)
            assert reply["degraded"] is True and reply["decision"] == "answer"
            assert time.monotonic() - started < 5
            metrics = client.get("/metrics").text
            assert 'madoguchi_rasa_failures_total{kind="timeout"} 1.0' in metrics


class FixedReplies(BaseHTTPRequestHandler):
    """Rasa and the action server as seen when an action failed: Rasa answers 200 with
    no messages, the action server says it is healthy."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._send(b"[]")

    def do_GET(self):  # noqa: N802
        self._send(b'{"status": "ok"}')

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_failed_action_gets_an_apology_and_a_ticket(starter_settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FixedReplies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        with local(create_app(settings_for(starter_settings.home, port))) as client:
            reply = chat(client, QUESTION)
    finally:
        server.shutdown()
    assert reply["decision"] == "handoff"
    assert reply["replies"][0]["text"] == dialogue.APOLOGY
    ticket = get_ticket(open_db(starter_settings.database_path), reply["handoff_id"])
    assert ticket.reason == "assistant_error"
    assert ticket.transcript[0]["text"] == QUESTION


def test_a_corrupt_index_is_rebuilt_at_start_while_health_says_so(starter_settings, monkeypatch):
    questions = [QUESTION, "保険料の払い方", "住民票の写しを取りたい", "児童手当の申請"]
    settings = settings_for(starter_settings.home, free_port(), MADOGUCHI_STARTUP_WAIT="0")
    with local(create_app(settings)) as client:
        client.headers.update(bearer(starter_settings, "sato", "staff"))
        assert client.app.state.engines.wait(60)
        before = [client.get("/api/answers", params={"q": q}).json() for q in questions]
    (settings.index_dir / "index.bin").write_bytes(b"\x00garbage" * 100)

    # The real rebuild runs; it only waits after its first entry until the test has looked
    # (a rebuild from cached vectors can be over before a poll loop's first turn).
    rebuilding, looked = threading.Event(), threading.Event()
    encode = EngineHolder._progress

    def held(self, keys):
        for done, key in enumerate(encode(self, keys)):
            if done == 0:
                rebuilding.set()
                looked.wait(60)
            yield key

    monkeypatch.setattr(EngineHolder, "_progress", held)
    with local(create_app(settings)) as client:
        client.headers.update(bearer(starter_settings, "sato", "staff"))
        assert rebuilding.wait(60)
        health = client.get("/api/health").json()
        lookup = client.get("/api/answers", params={"q": QUESTION})
        looked.set()
        assert health["status"] == "degraded" and health["reasons"]
        assert health["components"]["index"]["status"] == "rebuilding"
        assert health["components"]["index"]["progress"].startswith("1/")
        assert lookup.status_code == 503 and lookup.headers["retry-after"]
        assert client.app.state.engines.wait(60)
        index = client.get("/api/health").json()["components"]["index"]
        assert index["status"] == "ok"
        assert "unreadable" in index["rebuilt_at_start"]
        after = [client.get("/api/answers", params={"q": q}).json() for q in questions]
    assert after == before


def test_request_ids_are_returned_and_kept_when_well_formed(client):
    given = client.get("/api/health", headers={"X-Request-ID": "proxy-1234abcd"})
    assert given.headers["x-request-id"] == "proxy-1234abcd"
    made = client.get("/api/health", headers={"X-Request-ID": "bad id\n"})
    assert made.headers["x-request-id"] != "bad id\n" and len(made.headers["x-request-id"]) == 32


def test_json_logs_carry_the_request_id_and_mask_personal_numbers():
    import logging

    from assistant.operations import logs

    formatter = logs.JsonFormatter("api")
    record = logging.makeLogRecord(
        {
            "name": "t",
            "levelname": "INFO",
            "msg": "resident said %s",
            "args": ("電話は090-1234-5678、マイナンバーは123456789012",),
            "route": "/api/chat",
        }
    )
    with logs.request_context("req-00000001"):
        line = json.loads(formatter.format(record))
    assert line["request_id"] == "req-00000001"
    assert line["service"] == "api" and line["route"] == "/api/chat"
    assert "090-1234-5678" not in line["message"] and "123456789012" not in line["message"]
    try:
        raise ValueError("card 4111 1111 1111 1111")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert "4111 1111 1111 1111" not in line["exception"]
    assert "request_id" not in line  # outside a request


def test_one_address_cannot_open_dozens_of_tickets(starter_settings):
    """Regression: every handoff opened a ticket, however many one address asked for.
    Now the sixth in ten minutes (MADOGUCHI_HANDOFF_RATE_PER_CLIENT, default 5) gets a
    polite message with the phone number instead, and no ticket."""
    settings = settings_for(starter_settings.home, free_port())
    assert settings.handoff_rate_per_client == 5
    with TestClient(create_app(settings)) as client:
        opened = [chat(client, "職員と話したいです") for _ in range(5)]
        assert [r["decision"] for r in opened] == ["handoff"] * 5
        refused = chat(client, "職員と話したいです")
        # Talking to the assistant goes on; only tickets are limited.
        answered = chat(client, QUESTION)
    city = client.app.state.engines.engine.city
    assert refused["decision"] == "handoff_refused" and "handoff_id" not in refused
    assert [r["text"] for r in refused["replies"]] == [dialogue.handoff_limited_reply(city)]
    assert city.main_phone in refused["replies"][0]["text"]
    assert answered["decision"] == "answer"
    count = open_db(starter_settings.database_path).execute("SELECT COUNT(*) FROM tickets")
    assert count.fetchone()[0] == 5
    # A message in a conversation that already has its ticket is not a new ticket.
    with TestClient(create_app(settings)) as client:
        first = chat(client, "職員と話したいです")
        for _ in range(10):
            assert chat(client, "追加の情報です", first["session_id"])["decision"] == "handoff"


def test_the_limit_is_the_setting(starter_settings):
    settings = settings_for(
        starter_settings.home, free_port(), MADOGUCHI_HANDOFF_RATE_PER_CLIENT="1"
    )
    with TestClient(create_app(settings)) as client:
        assert chat(client, "職員と話したいです")["decision"] == "handoff"
        assert chat(client, "職員と話したいです")["decision"] == "handoff_refused"


def test_a_failed_action_past_the_limit_apologises_without_a_ticket(starter_settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FixedReplies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = settings_for(
            starter_settings.home, server.server_address[1], MADOGUCHI_HANDOFF_RATE_PER_CLIENT="1"
        )
        with TestClient(create_app(settings)) as client:
            first, second = chat(client, QUESTION), chat(client, QUESTION)
    finally:
        server.shutdown()
    assert first["decision"] == "handoff" and first["handoff_id"]
    assert second["decision"] == "handoff_refused" and "handoff_id" not in second
    assert second["replies"][0]["text"] == dialogue.APOLOGY


def suggestions(settings) -> list[tuple]:
    db = open_db(settings.database_path)
    rows = db.query("SELECT entry_id, text, source, weight FROM suggestions ORDER BY id")
    return [(r["entry_id"], r["text"], r["source"], r["weight"]) for r in rows]


def test_without_rasa_solved_after_a_choice_suggests_the_question_for_that_entry(
    client, starter_settings
):
    offered = chat(client, "税金を払いたい")
    assert offered["decision"] == "clarify"
    chosen = chat(client, offered["replies"][0]["buttons"][1]["payload"], offered["session_id"])
    entry_id = chosen["replies"][0]["entry_id"]
    solved = chosen["replies"][-1]["buttons"][0]["payload"]
    assert chat(client, solved, offered["session_id"])["decision"] == "feedback"
    assert suggestions(starter_settings) == [(entry_id, "税金を払いたい", "resident", 1)]
    # A typed choice counts as a pick too.
    again = chat(client, "税金を払いたい")
    typed = chat(client, "3番目", again["session_id"])
    third = typed["replies"][0]["entry_id"]
    chat(client, typed["replies"][-1]["buttons"][0]["payload"], again["session_id"])
    assert suggestions(starter_settings)[1:] == [(third, "税金を払いたい", "resident", 1)]


def test_without_rasa_a_direct_answer_teaches_only_when_it_did_not_help(client, starter_settings):
    answered = chat(client, QUESTION)
    assert answered["decision"] == "answer"
    entry_id = answered["replies"][0]["entry_id"]
    solved, unsolved = (b["payload"] for b in answered["replies"][-1]["buttons"])
    chat(client, solved, answered["session_id"])
    assert suggestions(starter_settings) == []
    again = chat(client, QUESTION)
    chat(client, unsolved, again["session_id"])
    assert suggestions(starter_settings) == [(entry_id, QUESTION, "resident", -1)]
