"""The API in-process (FastAPI TestClient) over a real database, encoder and index.

Chat through a real Rasa server is in test_e2e.py; here Rasa is not running, which is
what the health check is tested against (the chat's degraded mode: test_degraded.py).
"""

from __future__ import annotations

import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from assistant.operations.config import ConfigError
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
    # What the knowledge base's own texts changed: the shipped out-of-scope examples,
    # less those close to one of the starter entries' questions.
    calibration = index["calibration"]
    assert calibration["knowledge_revision"] == 1
    assert calibration["out_of_scope_examples"] >= 100
    used, close = (
        calibration["out_of_scope_examples_used"],
        calibration["left_out_close_to_an_entry"],
    )
    assert used + close == calibration["out_of_scope_examples"] and 0 < close < 50
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


# -- security headers, docs, health and metrics ---------------------------------------------

PAGES = ["/", "/login", "/staff", "/editor", "/widget-demo"]


def test_every_page_and_api_response_has_the_security_headers(client):
    """Regression: the /static/*.html copies of the consoles had no CSP, frame-ancestors
    or nosniff, API responses had no nosniff, and /api/auth/me (the CSRF token), tickets
    and entries could be cached."""
    editor = bearer(client.app.state.settings, "ito", "editor")
    responses = {
        path: client.get(path) for path in [*PAGES, "/widget.js", "/static/chat.js", "/favicon.ico"]
    }
    responses |= {
        "me": client.get("/api/auth/me"),
        "tickets": client.get("/api/tickets"),
        "ticket (404)": client.get("/api/tickets/999"),
        "entries": client.get("/api/entries", headers=editor),
        "entry": client.get("/api/entries/sodai-gomi", headers=editor),
        "answers": client.get("/api/answers", params={"q": "粗大ごみ"}),
        "anonymous (401)": client.get("/api/tickets", headers={"Authorization": "Bearer x"}),
        "bad input (422)": client.get("/api/answers"),
        "chat": client.post("/api/chat", json={"message": "粗大ごみを出したい"}),
        "openapi": client.get("/openapi.json"),
        "unknown (404)": client.get("/no-such-page"),
    }
    for name, response in responses.items():
        assert response.status_code < 500, name
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", name
        assert "frame-ancestors" in headers["content-security-policy"], name
        assert headers["referrer-policy"] == "same-origin", name
    for name in ("me", "tickets", "ticket (404)", "entries", "entry", "answers", "chat"):
        assert responses[name].headers["cache-control"] == "no-store", name
    for path in ("/login", "/staff", "/editor", "/widget-demo"):
        assert "frame-ancestors 'none'" in responses[path].headers["content-security-policy"]
        assert responses[path].headers["x-frame-options"] == "DENY"
    api_csp = responses["me"].headers["content-security-policy"]
    assert api_csp.startswith("default-src 'none'")


def test_the_consoles_are_served_only_at_their_routes(client):
    for name in ("staff", "editor", "login", "chat", "widget-demo", "docs"):
        assert client.get(f"/static/{name}.html").status_code == 404, name
        assert client.get(f"/static/{name}.HTML").status_code == 404, name
    assert client.get("/static/staff.js").status_code == 200


def test_the_chat_page_may_be_framed_only_by_the_citys_sites(client, starter_settings, tmp_path):
    """Regression: the chat page allowed frame-ancestors *."""
    csp = client.get("/").headers["content-security-policy"]
    assert csp.endswith("frame-ancestors 'self'") and "*" not in csp
    profile = tmp_path / "city.yaml"
    text = starter_settings.city_path.read_text(encoding="utf-8")
    profile.write_text(
        text.replace(
            "embed_origins: []",
            'embed_origins: ["https://www.city.example.lg.jp", "https://kosodate.example.jp/"]',
        ),
        encoding="utf-8",
    )
    settings = make_settings(starter_settings.home, MADOGUCHI_CITY=str(profile))
    with TestClient(create_app(settings)) as other:
        csp = other.get("/").headers["content-security-policy"]
    assert csp.endswith(
        "frame-ancestors 'self' https://www.city.example.lg.jp https://kosodate.example.jp"
    )
    profile.write_text(text.replace("embed_origins: []", 'embed_origins: ["*"]'), "utf-8")
    with pytest.raises(Exception, match="embed_origins"):
        with TestClient(create_app(settings)):
            pass


def test_no_page_loads_a_script_from_elsewhere(client, starter_settings, tmp_path):
    """Regression: /docs and /redoc loaded Swagger UI and ReDoc from a CDN."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    assets = tmp_path / "swagger-ui-dist"
    assets.mkdir()
    (assets / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = () => {};")
    (assets / "swagger-ui.css").write_text("body {}")
    settings = make_settings(starter_settings.home, MADOGUCHI_DOCS_ASSETS=str(assets))
    with TestClient(create_app(settings)) as local:
        docs = local.get("/docs")
        assert docs.status_code == 200
        assert "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert "script-src" not in docs.headers["content-security-policy"]  # 'self' only
        assert local.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    pages = {path: client.get(path).text for path in PAGES} | {"/docs": docs.text}
    for path, page in pages.items():
        for src in re.findall(r'<(?:script|link|img|iframe)[^>]*(?:src|href)="([^"]+)"', page):
            assert src.startswith("/") and not src.startswith("//"), (path, src)
    with pytest.raises(ConfigError, match="MADOGUCHI_DOCS_ASSETS"):
        make_settings(starter_settings.home, MADOGUCHI_DOCS_ASSETS=str(tmp_path))


def test_health_tells_details_only_to_staff_and_this_machine(client):
    """Regression: /api/health showed anyone the encoder's path and internal URLs."""
    anonymous = TestClient(client.app, client=("192.0.2.77", 50000))
    body = anonymous.get("/api/health").json()
    assert body["status"] == "degraded" and body["reasons"] == []
    assert body["components"]["rasa"] == {"status": "unreachable"}
    assert body["components"]["encoder"] == {"status": "ok"}
    assert "/" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
    full = client.get("/api/health").json()  # staff (the fixture's bearer token)
    assert full["components"]["encoder"]["path"] and full["reasons"]
    local = TestClient(client.app, client=("127.0.0.1", 50000))
    assert local.get("/api/health").json()["reasons"]


def test_metrics_only_to_this_machine_or_the_monitoring_token(client, starter_settings):
    """Regression: /metrics (failed-login counts among them) was anonymous."""
    assert TestClient(client.app, client=("192.0.2.77", 50000)).get("/metrics").status_code == 403
    local = TestClient(client.app, client=("127.0.0.1", 50000))
    assert "madoguchi_http_requests_total" in local.get("/metrics").text
    token = "monitoring-token-0123456789abcdef"
    settings = make_settings(starter_settings.home, MADOGUCHI_METRICS_TOKEN=token)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as monitored:
        assert monitored.get("/metrics").status_code == 401
        bad = monitored.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        good = monitored.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and "madoguchi_" in good.text
    with pytest.raises(ConfigError, match="MADOGUCHI_METRICS_TOKEN"):
        make_settings(starter_settings.home, MADOGUCHI_METRICS_TOKEN="short")


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


def test_the_empty_chat_shows_the_city_and_the_profiles_topics(client):
    welcome = client.get("/api/chat/welcome").json()
    assert welcome["city"] == "みなと市"
    assert welcome["welcome"].startswith("みなと市役所の手続きやサービスについて")
    assert welcome["hours"] == "平日 8:30〜17:15"
    assert [t["entry_id"] for t in welcome["topics"]] == [
        "juminhyo-copy",
        "sodai-gomi",
        "tennyu",
        "jido-teate",
    ]
    assert welcome["topics"][1] == {
        "entry_id": "sodai-gomi",
        "title": "粗大ごみの出し方",
        "question": welcome["topics"][1]["question"],
    }
    assert welcome["topics"][1]["question"]
    assert {"0000-00-0000", "0000-00-4444"} <= set(welcome["phones"])


def test_the_most_asked_entries_come_before_the_profiles_topics(client):
    for _ in range(2):
        reply = client.post("/api/chat", json={"message": "婚姻届を出したい"}).json()
        assert reply["decision"] == "answer" and reply["replies"][0]["entry_id"] == "konin-todoke"
    client.post("/api/chat", json={"message": "粗大ごみを出したい"})
    topics = [t["entry_id"] for t in client.get("/api/chat/welcome").json()["topics"]]
    assert topics == ["konin-todoke", "sodai-gomi", "juminhyo-copy", "tennyu"]
