"""The suggestions queue over HTTP (api/routes/suggestions.py) and the ticket resolve that
feeds it, on a real database and the real engine: a handed-off question becomes a
phrasing residents are answered with once an editor accepts it and another approves."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from knowledge.errors import message_for
from knowledge.io import import_entries
from knowledge.store import audit_log, latest_revision, open_db
from knowledge.suggestions import reject, suggest
from tests.conftest import bearer, copy_home, handoff, make_settings

ENTRY = "sodai-gomi"
# Handed off today: the engine cannot tell it is about large-item rubbish.
ASKED = "でかい家具をほかしたい"
# Two entries the engine keeps apart only by the one phrasing: adding a near copy of it to
# the other changes which answers it.
PETS = [
    {
        "id": "inu-touroku",
        "title": "ペットの手続き",
        "questions": ["犬の登録をしたい"],
        "answer": "保健所で登録します。",
    },
    {
        "id": "inu-sodan",
        "title": "犬の登録の相談",
        "questions": ["犬のしつけを相談したい"],
        "answer": "動物愛護センターへご相談ください。",
    },
]


@pytest.fixture(scope="module")
def client(starter_template, tmp_path_factory):
    folder = tmp_path_factory.mktemp("suggestions-api")
    home = copy_home(starter_template, folder / "home")
    settings = make_settings(home)
    pets = folder / "pets.jsonl"
    pets.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in PETS), "utf-8")
    db = open_db(settings.database_path)
    import_entries(db, pets, "jsonl", publish=True)
    db.close()
    with TestClient(create_app(settings)) as running:
        yield running


def editor(client, name="suzuki"):
    return bearer(client.app.state.settings, name, "editor")


def staff(client):
    return bearer(client.app.state.settings, "sato", "staff")


def database(client):
    return open_db(client.app.state.settings.database_path)


def wording_of(client, entry_id: str, text: str, status: str = "open") -> dict | None:
    listed = client.get("/api/suggestions", params={"status": status}, headers=editor(client))
    assert listed.status_code == 200, listed.text
    for group in listed.json()["data"]:
        for wording in group["wordings"]:
            if group["entry_id"] == entry_id and wording["text"] == text:
                return wording
    return None


def test_a_resolved_handoff_is_accepted_approved_and_then_answered(client):
    before = client.get("/api/answers", params={"q": ASKED}, headers=staff(client)).json()
    assert before["decision"] != "answer"
    ticket = handoff(
        database(client),
        {"role": "resident", "text": f"{ASKED}。電話は090-1234-5678"},
        {"role": "assistant", "text": "担当者におつなぎします。"},
        session_id="api-1",
    )
    resolve = client.post(
        f"/api/tickets/{ticket.id}/resolve",
        json={"entry_id": ENTRY, "question": ASKED},
        headers=staff(client),
    )
    assert resolve.status_code == 200, resolve.text
    assert resolve.json()["answered_entry"] == ENTRY
    title = latest_revision(database(client), ENTRY).title
    assert resolve.json()["answered_title"] == title == "粗大ごみの出し方"
    listed = client.get("/api/tickets", params={"view": "all"}, headers=staff(client)).json()
    shown = next(t for t in listed["data"] if t["id"] == ticket.id)
    assert (shown["answered_entry"], shown["answered_title"]) == (ENTRY, title)
    wording = wording_of(client, ENTRY, ASKED)
    assert wording["sources"] == {"staff": 1, "resident": 0} and wording["tickets"] == [ticket.id]
    assert wording["conflict"] is None and wording["against"] == 0
    listed = client.get("/api/suggestions", headers=editor(client)).json()
    assert listed["counts"]["open"] >= 1 and listed["count"] >= 1
    body = {"entry_id": ENTRY, "items": [{"id": wording["id"], "text": None}]}
    accepted = client.post("/api/suggestions/accept", json=body, headers=editor(client))
    assert accepted.status_code == 201, accepted.text
    draft = accepted.json()
    assert draft["status"] == "draft" and draft["questions"][-1] == ASKED
    # A draft answers nobody yet.
    still = client.get("/api/answers", params={"q": ASKED}, headers=staff(client)).json()
    assert still["decision"] == before["decision"]
    path = f"/api/entries/{ENTRY}/revisions/{draft['revision']}"
    assert client.post(f"{path}/submit", headers=editor(client)).is_success
    assert client.post(f"{path}/approve", headers=editor(client, "tanaka")).is_success
    after = client.get("/api/answers", params={"q": ASKED}, headers=staff(client)).json()
    assert after["decision"] == "answer" and after["results"][0]["entry_id"] == ENTRY
    assert wording_of(client, ENTRY, ASKED, "accepted")["revision"] == draft["revision"]
    actions = [event["action"] for event in audit_log(database(client), ENTRY)]
    assert actions[-4:] == ["accept_suggestions", "suggestion.accept", "submit", "publish"]


def test_resolving_with_an_unknown_entry_fails_and_changes_nothing(client):
    ticket = handoff(database(client), {"role": "resident", "text": "何か"}, session_id="api-2")
    url = f"/api/tickets/{ticket.id}/resolve"
    refused = client.post(url, json={"entry_id": "nai-entry"}, headers=staff(client))
    assert refused.status_code == 422 and refused.json()["code"] == "suggestion.unknown_entry"
    assert client.get(f"/api/tickets/{ticket.id}", headers=staff(client)).json()["status"] == "open"


def test_a_wording_that_would_change_another_entrys_answer_is_a_conflict(client):
    number = suggest(
        database(client),
        entry_id="inu-sodan",
        text="犬の登録をしたいです",
        source="resident",
        actor="resident",
    )
    wording = wording_of(client, "inu-sodan", "犬の登録をしたいです")
    assert wording["conflict"] == {
        "code": "suggestion.changes_answer",
        "message": message_for(
            "suggestion.changes_answer",
            {
                "wording": "犬の登録をしたいです",
                "entry_id": "inu-touroku",
                "question": "犬の登録をしたい",
            },
        ),
        "entry_id": "inu-touroku",
        "question": "犬の登録をしたい",
    }
    body = {"entry_id": "inu-sodan", "items": [{"id": number, "text": None}]}
    refused = client.post("/api/suggestions/accept", json=body, headers=editor(client))
    assert refused.status_code == 409 and refused.json()["code"] == "suggestion.changes_answer"
    assert wording_of(client, "inu-sodan", "犬の登録をしたいです") is not None  # still open
    # Edited to something that takes nothing over, it is accepted.
    edited = {"entry_id": "inu-sodan", "items": [{"id": number, "text": "犬のむだ吠えが困る"}]}
    accepted = client.post("/api/suggestions/accept", json=edited, headers=editor(client))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["questions"][-1] == "犬のむだ吠えが困る"


def test_another_entrys_phrasing_is_a_conflict_and_force_cannot_take_it(client):
    number = suggest(
        database(client),
        entry_id=ENTRY,
        text="ペットボトルって何ごみ",
        source="staff",
        actor="sato",
    )
    wording = wording_of(client, ENTRY, "ペットボトルって何ごみ")
    assert wording["conflict"]["code"] == "suggestion.same_as_phrasing"
    assert wording["conflict"]["entry_id"] == "gomi-bunbetsu"
    body = {"entry_id": ENTRY, "items": [{"id": number, "text": None}]}
    refused = client.post("/api/suggestions/accept", json=body, headers=editor(client))
    assert refused.status_code == 409 and refused.json()["code"] == "suggestion.same_as_phrasing"
    forced = client.post(
        "/api/suggestions/accept", json=body | {"force": True}, headers=editor(client)
    )
    assert forced.status_code == 422
    assert [p["code"] for p in forced.json()["problems"]] == ["item.phrasing_taken"]


def test_a_long_queue_is_listed_without_the_preview_then_checked_entry_by_entry(client):
    db = database(client)
    changes = suggest(
        db, entry_id="inu-sodan", text="犬の登録をしたいです", source="staff", actor="sato"
    )
    taken = suggest(db, entry_id=ENTRY, text="スプレー缶 捨て方", source="staff", actor="sato")
    try:
        quick = client.get(
            "/api/suggestions",
            params={"status": "open", "preview": "false"},
            headers=editor(client),
        ).json()
        shown = {w["id"]: w for group in quick["data"] for w in group["wordings"]}
        # Without the preview only the lookup's conflict is found, and the page is told so.
        assert shown[taken]["conflict"]["code"] == "suggestion.same_as_phrasing"
        assert shown[changes]["conflict"] is None and not shown[changes]["conflict_checked"]
        one = client.get(
            "/api/suggestions",
            params={"status": "open", "entry_id": "inu-sodan"},
            headers=editor(client),
        ).json()
        assert [group["entry_id"] for group in one["data"]] == ["inu-sodan"]
        checked = {w["id"]: w for w in one["data"][0]["wordings"]}
        assert checked[changes]["conflict_checked"]
        assert checked[changes]["conflict"]["code"] == "suggestion.changes_answer"
        assert checked[changes]["conflict"]["entry_id"] == "inu-touroku"
        # The same as the whole list with the preview says.
        assert wording_of(client, "inu-sodan", "犬の登録をしたいです") == checked[changes]
        none = client.get(
            "/api/suggestions", params={"entry_id": "no-such-entry"}, headers=editor(client)
        ).json()
        assert none["data"] == [] and none["count"] == 0
        counts = client.get("/api/suggestions/counts", headers=editor(client))
        assert counts.status_code == 200 and counts.json() == quick["counts"]
        assert counts.json()["open"] >= 2
    finally:  # the module's other tests see the queue as it was
        reject(db, [changes, taken], actor="suzuki", reason="")


def test_a_rejected_wording_is_listed_as_rejected_and_never_open_again(client):
    db = database(client)
    number = suggest(db, entry_id=ENTRY, text="家具屋の連絡先", source="staff", actor="sato")
    rejected = client.post(
        "/api/suggestions/reject",
        json={"ids": [number], "reason": "粗大ごみの話ではない"},
        headers=editor(client),
    )
    assert rejected.status_code == 200 and rejected.json() == {"rejected": 1}
    assert wording_of(client, ENTRY, "家具屋の連絡先") is None
    assert wording_of(client, ENTRY, "家具屋の連絡先", "rejected")["ids"] == [number]
    suggest(db, entry_id=ENTRY, text="家具屋の連絡先", source="resident", actor="resident")
    assert wording_of(client, ENTRY, "家具屋の連絡先") is None
    again = client.post("/api/suggestions/reject", json={"ids": [999999]}, headers=editor(client))
    assert again.status_code == 404 and again.json()["code"] == "suggestion.not_found"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/suggestions", None),
        ("post", "/api/suggestions/accept", {"entry_id": ENTRY, "items": []}),
        ("post", "/api/suggestions/reject", {"ids": [1]}),
    ],
)
def test_the_queue_is_for_editors(client, method, path, body):
    anonymous = getattr(client, method)(path, **({"json": body} if body else {}))
    assert anonymous.status_code == 401
    kwargs = {"json": body} if body else {}
    assert getattr(client, method)(path, headers=staff(client), **kwargs).status_code == 403


def test_bad_requests_get_their_codes(client):
    headers = editor(client)
    status = client.get("/api/suggestions", params={"status": "pending"}, headers=headers)
    assert status.status_code == 422 and status.json()["code"] == "request.validation"
    empty = client.post(
        "/api/suggestions/accept", json={"entry_id": ENTRY, "items": []}, headers=headers
    )
    assert empty.status_code == 422 and empty.json()["code"] == "suggestion.nothing_selected"
    number = suggest(
        database(client), entry_id=ENTRY, text="タイヤの処分", source="staff", actor="sato"
    )
    html = {"entry_id": ENTRY, "items": [{"id": number, "text": "<b>タイヤ</b>"}]}
    refused = client.post("/api/suggestions/accept", json=html, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "suggestion.html"
    other = {"entry_id": "gomi-bunbetsu", "items": [{"id": number, "text": None}]}
    wrong = client.post("/api/suggestions/accept", json=other, headers=headers)
    assert wrong.status_code == 404 and wrong.json()["code"] == "suggestion.not_found"


def test_metrics_count_the_wordings_by_status(starter_settings):
    db = open_db(starter_settings.database_path)
    first = suggest(db, entry_id=ENTRY, text="でかい家具", source="staff", actor="sato")
    suggest(db, entry_id=ENTRY, text="でかい 家具！", source="resident", actor="resident")
    suggest(db, entry_id=ENTRY, text="タンスの処分", source="staff", actor="sato")
    reject(db, [first], actor="suzuki")
    with TestClient(create_app(starter_settings), client=("127.0.0.1", 50000)) as local:
        metrics = local.get("/metrics").text
    assert 'madoguchi_suggestions{status="open"} 1.0' in metrics
    assert 'madoguchi_suggestions{status="accepted"} 0.0' in metrics
    assert 'madoguchi_suggestions{status="rejected"} 1.0' in metrics
