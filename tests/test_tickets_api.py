"""The staff handoff inbox and the resident's message feed, over a real database."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.residents import SessionIds
from knowledge.store import open_db
from knowledge.tickets import RESOLVED_NOTICE, open_ticket
from tests.conftest import staff

# The server's secret for this test's home: the conversation id is one it issued.
SECRET = b"tickets-api-test-secret-32-bytes"
SESSION = SessionIds(SECRET).issue()


@pytest.fixture
def client(settings):
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.secret_path.write_bytes(SECRET)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def ticket_id(settings) -> int:
    db = open_db(settings.database_path)
    ticket = open_ticket(
        db,
        session_id=SESSION,
        reason="two_failed_turns",
        transcript=[
            {"role": "resident", "text": "明日の天気は？", "intent": "out_of_scope"},
            {"role": "resident", "text": "マイナンバーは1234 5678 9012です"},
        ],
        candidates=[{"entry_id": "hinan-joho", "revision": 1, "score": 0.31}],
        page="https://www.example.lg.jp/bosai/",
    )
    db.close()
    return ticket.id


def feed(client: TestClient, after: int = 0) -> dict:
    response = client.get(
        "/api/chat/messages", params={"after": after}, headers={"X-Conversation-Id": SESSION}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/tickets"),
        ("get", "/api/tickets/1"),
        ("post", "/api/tickets/1/claim"),
        ("post", "/api/tickets/1/reply"),
        ("post", "/api/tickets/1/resolve"),
    ],
)
def test_every_ticket_route_needs_the_token(client, ticket_id, method, path):
    assert getattr(client, method)(path).status_code == 401
    wrong = {"Authorization": "Bearer nope", "X-Madoguchi-User": "sato"}
    assert getattr(client, method)(path, headers=wrong).status_code == 401


def test_the_whole_context_is_in_the_ticket(client, ticket_id):
    body = client.get(f"/api/tickets/{ticket_id}", headers=staff(client, "sato")).json()
    assert body["reason"] == "two_failed_turns"
    assert body["page"] == "https://www.example.lg.jp/bosai/"
    assert body["transcript"][0]["intent"] == "out_of_scope"
    assert body["transcript"][1]["text"] == "マイナンバーは［個人番号］です"
    assert body["candidates"][0]["score"] == 0.31
    assert body["waiting_s"] >= 0 and body["claimed_by"] == ""


def test_staff_never_see_the_conversation_id(client, ticket_id):
    """Regression: ticket JSON carried the resident's conversation id, with which staff
    (or whoever saw the screen) could read the staff messages and write to the ticket."""
    headers = staff(client, "sato")
    responses = [
        client.get(f"/api/tickets/{ticket_id}", headers=headers),
        client.get("/api/tickets", params={"view": "all"}, headers=headers),
        client.post(f"/api/tickets/{ticket_id}/claim", headers=headers),
        client.post(f"/api/tickets/{ticket_id}/reply", json={"text": "確認"}, headers=headers),
        client.post(f"/api/tickets/{ticket_id}/resolve", json={"note": "済"}, headers=headers),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert SESSION not in response.text and "session_id" not in response.text
        assert response.headers["cache-control"] == "no-store"


def test_inbox_views_new_mine_resolved(client, ticket_id):
    def ids(view: str, who: str = "sato") -> list[int]:
        response = client.get("/api/tickets", params={"view": view}, headers=staff(client, who))
        return [t["id"] for t in response.json()["data"]]

    assert ids("new") == [ticket_id] and ids("mine") == []
    client.post(f"/api/tickets/{ticket_id}/claim", headers=staff(client, "sato"))
    assert ids("new") == [] and ids("mine") == [ticket_id] and ids("mine", "suzuki") == []
    client.post(f"/api/tickets/{ticket_id}/resolve", json={}, headers=staff(client, "sato"))
    assert ids("open") == [] and ids("resolved") == [ticket_id]
    assert client.get("/api/tickets?view=bogus", headers=staff(client, "sato")).status_code == 422


def test_staff_reply_reaches_the_resident_and_resolving_unpauses(client, ticket_id):
    assert feed(client) == {"session_id": SESSION, "paused": True, "messages": []}
    reply = client.post(
        f"/api/tickets/{ticket_id}/reply",
        json={"text": "防災課の鈴木です。避難所は市のハザードマップでご確認いただけます。"},
        headers=staff(client, "suzuki"),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["claimed_by"] == "suzuki"
    (message,) = feed(client)["messages"]
    assert message["role"] == "staff"
    assert message["text"] == "防災課の鈴木です。避難所は市のハザードマップでご確認いただけます。"
    resolved = client.post(
        f"/api/tickets/{ticket_id}/resolve",
        json={"note": "避難所を案内"},
        headers=staff(client, "suzuki"),
    )
    assert resolved.json()["status"] == "resolved" and resolved.json()["note"] == "避難所を案内"
    after = feed(client, after=message["id"])
    assert after["paused"] is False
    assert [(m["role"], m["text"]) for m in after["messages"]] == [("system", RESOLVED_NOTICE)]


def test_ticket_errors_are_clear(client, ticket_id):
    assert client.get("/api/tickets/999", headers=staff(client, "sato")).status_code == 404
    empty = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": " "}, headers=staff(client, "a")
    )
    assert empty.status_code == 422 and "must not be empty" in empty.text
    extra = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": "x", "html": 1}, headers=staff(client, "a")
    )
    assert extra.status_code == 422
    client.post(f"/api/tickets/{ticket_id}/resolve", json={}, headers=staff(client, "a"))
    again = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": "x"}, headers=staff(client, "a")
    )
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]


@pytest.mark.parametrize("session_id", ["short", "bad/../id", "x" * 65])
def test_message_feed_rejects_malformed_session_ids(client, session_id):
    response = client.get("/api/chat/messages", headers={"X-Conversation-Id": session_id})
    assert response.status_code in (404, 422)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("ご確認ください\u202e", "control characters"),  # a bidi override
        ("ご確認\u2066ください", "control characters"),  # a bidi isolate
        ("ご確認\u200bください", "control characters"),  # zero width space
        ("ご確認\u0090ください", "control characters"),  # a C1 control
        ("<a href='https://evil.example'>こちら</a>", "HTML"),
        ("<script>alert(1)</script>", "HTML"),
    ],
)
def test_a_reply_or_note_with_hidden_characters_or_html_is_refused(
    client, ticket_id, text, problem
):
    headers = staff(client, "sato")
    for action, field in (("reply", "text"), ("resolve", "note")):
        refused = client.post(
            f"/api/tickets/{ticket_id}/{action}", json={field: text}, headers=headers
        )
        assert refused.status_code == 422 and problem in refused.json()["detail"], refused.text
    assert client.get(f"/api/tickets/{ticket_id}", headers=headers).json()["status"] == "open"


def test_a_reply_with_a_personal_number_is_masked_and_staff_are_told(client, ticket_id):
    headers = staff(client, "sato")
    sent = client.post(
        f"/api/tickets/{ticket_id}/reply",
        json={"text": "お電話は +81 90-1234-5678 へどうぞ"},
        headers=headers,
    ).json()
    assert sent["masked"] == ["電話番号"]
    assert sent["transcript"][-1]["text"] == "お電話は ［電話番号］ へどうぞ"
    assert feed(client)["messages"][-1]["text"] == "お電話は ［電話番号］ へどうぞ"
    plain = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": "承知しました"}, headers=headers
    ).json()
    assert plain["masked"] == []


def test_the_page_a_ticket_keeps_has_no_query_string(settings):
    db = open_db(settings.database_path)
    ticket = open_ticket(
        db,
        session_id="s-page",
        reason="requested_human",
        transcript=[],
        candidates=[],
        page="https://www.example.lg.jp/search?q=%E4%BD%8F%E6%B0%91%E7%A5%A8&tel=09012345678#top",
    )
    assert ticket.page == "https://www.example.lg.jp/search"


@pytest.mark.parametrize("field", ["message", "page"])
@pytest.mark.parametrize("hidden", ["\u202e", "\u2067", "\u200d", "\ufeff", "\u009b", "\u061c"])
def test_a_chat_message_with_invisible_characters_is_refused(client, field, hidden):
    body = {"message": "住民票を取りたい", "page": "https://www.example.lg.jp/"}
    body[field] = body[field][:3] + hidden + body[field][3:]
    refused = client.post("/api/chat", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", field]
