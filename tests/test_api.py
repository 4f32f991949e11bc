"""The API in-process (FastAPI TestClient) over a real database, encoder and index.

Chat through a real Rasa server is in test_e2e.py; here Rasa is not running, which is
what the health check is tested against (the chat's degraded mode: test_degraded.py).
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from knowledge.store import SCHEMA_VERSION
from tests.conftest import STARTER_COUNT, bearer, make_settings


@pytest.fixture
def client(starter_settings, unused_port):
    settings = make_settings(
        starter_settings.home,
        MADOGUCHI_RASA_PORT=str(unused_port),
        MADOGUCHI_ACTION_PORT=str(unused_port),  # nothing listens there either
    )
    with TestClient(create_app(settings)) as client:
        client.headers.update(bearer(settings, "sato", "staff"))  # for the staff lookup
        yield client


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_answers_returns_the_entry_text(client):
    response = client.get("/api/answers", params={"q": "粗大ごみを出したい", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] == "answer"
    assert body["results"][0]["entry_id"] == "sodai-gomi"
    assert body["results"][0]["answer"].startswith("粗大ごみは")
    assert "ごみ対策課" in body["results"][0]["contact"]
    assert len(body["results"]) == 3


def test_answers_as_of_date(client):
    response = client.get("/api/answers", params={"q": "住民票", "as_of": "2027-04-01"})
    assert response.status_code == 200
    assert client.get("/api/answers", params={"q": "住民票", "as_of": "4月"}).status_code == 422


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "あ" * 1001}, "q"),
        ({"q": "住民票", "k": 0}, "k"),
        ({"q": "住民票", "k": "many"}, "k"),
    ],
)
def test_answers_rejects_bad_input_naming_the_field(client, params, field):
    response = client.get("/api/answers", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message": ""}, "message"),
        ({"message": " \n "}, "message"),
        ({"message": "あ" * 1001}, "message"),
        ({"message": "住民票\x00"}, "message"),
        ({"message": 42}, "message"),
        ({}, "message"),
        ({"message": "住民票", "session_id": "../../etc"}, "session_id"),
    ],
)
def test_chat_rejects_bad_input_naming_the_field(client, body, field):
    response = client.post("/api/chat", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_chat_rejects_malformed_json(client):
    response = client.post(
        "/api/chat", content=b'{"message": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_health_reports_each_component_and_degraded_without_rasa(client):
    body = client.get("/api/health").json()
    assert body["status"] == "degraded"
    assert body["components"]["rasa"]["status"] == "unreachable"
    assert body["components"]["actions"]["status"] == "unreachable"
    assert any(reason.startswith("rasa unreachable") for reason in body["reasons"])
    assert body["components"]["database"] == {"status": "ok", "knowledge_revision": 1}
    index = body["components"]["index"]
    assert index["status"] == "ok"
    assert index["entries"] == STARTER_COUNT
    assert index["knowledge_revision"] == 1
    assert index["vectors"] > STARTER_COUNT
    assert body["components"]["encoder"]["status"] == "ok"


def test_concurrent_lookups_all_succeed_with_the_same_answer(client):
    def lookup(_):
        response = client.get("/api/answers", params={"q": "保険料の払い方"})
        return response.status_code, response.json()["results"][0]["answer"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lookup, range(40)))
    assert {status for status, _ in results} == {200}
    assert len({answer for _, answer in results}) == 1


def test_pages_are_served_in_japanese(client):
    chat = client.get("/")
    assert chat.status_code == 200
    assert '<html lang="ja">' in chat.text
    assert "マイナンバー" in chat.text  # the notice not to send personal numbers
    assert client.get("/staff").status_code == 200
    assert client.get("/static/chat.js").status_code == 200


def test_a_database_newer_than_the_program_answers_503_saying_so(settings):
    """It was a bare RuntimeError: a 500 without a word of why."""
    settings.home.mkdir(parents=True)
    with sqlite3.connect(settings.database_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for response in (
            client.get("/api/health"),
            client.get("/api/entries", headers={"Authorization": "Bearer unchecked"}),
            client.post("/api/chat", json={"message": "住民票"}),
        ):
            assert response.status_code == 503, response.text
            body = response.json()
            assert "新しい版" in body["detail"] and "更新" in body["detail"]
            assert f"schema version {SCHEMA_VERSION + 1} is newer" in body["error"]
