"""The editor API over a real database, engine and index (FastAPI TestClient)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from knowledge.store import get_entry, open_db
from tests.conftest import bearer, editor

PREMIUM = "kokuho-premium-calculation"


@pytest.fixture
def client(starter_settings):
    with TestClient(create_app(starter_settings)) as client:
        client.headers.update(bearer(starter_settings, "staff-lookup", "staff"))
        yield client


def test_editor_routes_need_an_editor(client, starter_settings):
    anonymous = {"Authorization": ""}
    assert client.get("/api/entries", headers=anonymous).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/api/entries", headers=wrong).status_code == 401
    # The client's own token is a staff member's: staff may look answers up, not edit.
    assert client.get("/api/answers", params={"q": "住民票"}).status_code == 200
    assert client.get("/api/entries").status_code == 403
    assert client.get("/api/entries", headers=editor(client, "sato")).status_code == 200


def test_a_scheduled_premium_revision_through_the_api(client, starter_settings):
    current = get_entry(open_db(starter_settings.database_path), PREMIUM)
    new_answer = "令和9年度（2027年4月から）の保険料率で計算します。\n\n" + current.answer
    body = {**current.content(), "answer": new_answer, "valid_from": "2027-04-01"}
    draft = client.post("/api/entries", json=body, headers=editor(client, "sato"))
    assert draft.status_code == 201, draft.text
    assert (draft.json()["revision"], draft.json()["status"]) == (2, "draft")
    submitted = client.post(
        f"/api/entries/{PREMIUM}/revisions/2/submit", headers=editor(client, "sato")
    )
    assert submitted.json()["status"] == "in_review"
    own = client.post(f"/api/entries/{PREMIUM}/revisions/2/approve", headers=editor(client, "sato"))
    assert own.status_code == 409
    approved = client.post(
        f"/api/entries/{PREMIUM}/revisions/2/approve", headers=editor(client, "suzuki")
    )
    assert approved.json()["status"] == "published"

    question = current.questions[0]

    def answer_on(day: str) -> dict:
        response = client.get("/api/answers", params={"q": question, "as_of": day})
        return response.json()["results"][0]

    assert (answer_on("2027-03-31")["revision"], answer_on("2027-03-31")["answer"]) == (
        1,
        current.answer,
    )
    assert (answer_on("2027-04-01")["revision"], answer_on("2027-04-01")["answer"]) == (
        2,
        new_answer,
    )

    history = client.get(f"/api/entries/{PREMIUM}/history", headers=editor(client, "tanaka")).json()
    assert [(r["revision"], r["status"], r["valid_from"]) for r in history["revisions"]] == [
        (1, "published", None),
        (2, "published", "2027-04-01"),
    ]
    assert [(e["actor"], e["action"]) for e in history["audit"]] == [
        ("import", "import"),
        ("sato", "save_draft"),
        ("sato", "submit"),
        ("suzuki", "publish"),
    ]
    assert history["audit"][1]["detail"]["changes"]["valid_from"] == {
        "from": None,
        "to": "2027-04-01",
    }


def test_invalid_content_is_a_422_naming_the_field(client):
    body = {"id": "new-entry", "title": "新しい項目", "questions": ["質問"], "answer": "<b>x</b>"}
    response = client.post("/api/entries", json=body, headers=editor(client, "sato"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "answer"
    unknown = client.post(
        "/api/entries", json={**body, "colour": "red"}, headers=editor(client, "sato")
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "colour"]


def test_archive_and_rollback_through_the_api(client):
    question = "粗大ごみを出したい"
    assert (
        client.get("/api/answers", params={"q": question}).json()["results"][0]["entry_id"]
        == "sodai-gomi"
    )
    archived = client.post(
        "/api/entries/sodai-gomi/archive",
        json={"reason": "見直し中"},
        headers=editor(client, "suzuki"),
    )
    assert archived.status_code == 204
    after = client.get("/api/answers", params={"q": question}).json()["results"]
    assert "sodai-gomi" not in [r["entry_id"] for r in after]
    restored = client.post(
        "/api/entries/sodai-gomi/rollback",
        json={"to_revision": 1},
        headers=editor(client, "suzuki"),
    )
    assert restored.json()["revision"] == 2
    assert (
        client.get("/api/answers", params={"q": question}).json()["results"][0]["entry_id"]
        == "sodai-gomi"
    )
    missing = client.post("/api/entries/no-such/archive", json={}, headers=editor(client, "suzuki"))
    assert missing.status_code == 404


def test_list_filters(client):
    listed = client.get(
        "/api/entries", params={"department": "市民課"}, headers=editor(client, "sato")
    ).json()
    assert listed["count"] == len(listed["data"]) > 10
    assert {e["department"] for e in listed["data"]} == {"市民課"}
