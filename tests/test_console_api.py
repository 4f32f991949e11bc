"""What the staff and editor consoles ask of the API beyond plain entries and tickets:
the editor's preview, the month's changes, the unanswered questions, proposals from a
handoff, revision diffs. Real SQLite, encoder and index (TestClient; Rasa not running)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.residents import SessionIds
from assistant.retrieval.engine import Engine
from knowledge.store import audit_log, get_entry, open_db
from knowledge.tickets import open_ticket
from tests.conftest import editor, staff

QUESTION = "粗大ごみを出したい"
ENTRY = "sodai-gomi"


@pytest.fixture
def client(starter_settings):
    with TestClient(create_app(starter_settings)) as client:
        yield client


def content(client: TestClient, entry_id: str) -> dict:
    entry = get_entry(open_db(client.app.state.settings.database_path), entry_id)
    return entry.content()


def test_preview_shows_the_answer_now_and_with_the_draft_without_saving(client):
    before = client.get("/api/answers", params={"q": QUESTION}, headers=staff(client)).json()
    draft = content(client, ENTRY) | {"answer": "粗大ごみの新しい案内です。{{代表電話}}へ。"}
    response = client.post(
        "/api/preview",
        json={"questions": [QUESTION, "児童手当の申請"], "draft": draft},
        headers=editor(client),
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["now"]["entry_id"] == ENTRY and first["now"]["decision"] == "answer"
    assert first["now"]["text"] == before["results"][0]["answer"]  # the chat's very text
    assert first["with_draft"]["entry_id"] == ENTRY and first["with_draft"]["revision"] == 0
    # Placeholders are filled as for residents.
    assert first["with_draft"]["text"].startswith("粗大ごみの新しい案内です。")
    assert "{{" not in first["with_draft"]["text"]
    assert second["now"]["entry_id"] == second["with_draft"]["entry_id"] != ENTRY
    # Nothing was saved or changed: the same search gives the same result as before.
    after = client.get("/api/answers", params={"q": QUESTION}, headers=staff(client)).json()
    assert after == before
    assert content(client, ENTRY)["answer"] != draft["answer"]


def test_preview_without_a_draft_and_with_an_invalid_one(client):
    plain = client.post("/api/preview", json={"questions": [QUESTION]}, headers=editor(client))
    assert plain.status_code == 200 and plain.json()["results"][0]["with_draft"] is None
    bad = content(client, ENTRY) | {"answer": "<script>alert(1)</script>"}
    refused = client.post(
        "/api/preview", json={"questions": [QUESTION], "draft": bad}, headers=editor(client)
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "answer"
    empty = client.post("/api/preview", json={"questions": ["  "]}, headers=editor(client))
    assert empty.status_code == 422


def test_a_preview_leaves_the_engine_ranking_exactly_as_before(client, starter_settings):
    questions = [QUESTION, "保険料の払い方", "住民票の写しを取りたい", "避難所はどこ"]
    engine: Engine = client.app.state.engines.engine
    before = [engine.search(q) for q in questions]
    draft = content(client, ENTRY) | {"questions": ["保険料の払い方を知りたい"]}
    client.post(
        "/api/preview", json={"questions": questions, "draft": draft}, headers=editor(client)
    ).raise_for_status()
    assert [engine.search(q) for q in questions] == before
    # ... and exactly like a fresh engine from the same database (another process).
    fresh = Engine.load(starter_settings)
    assert [fresh.search(q) for q in questions] == before


def test_changes_lists_publications_and_upcoming_effective_dates(client):
    body = content(client, ENTRY) | {"valid_from": "2099-04-01"}
    made = client.post("/api/entries", json=body, headers=editor(client, "suzuki")).json()
    path = f"/api/entries/{ENTRY}/revisions/{made['revision']}"
    client.post(f"{path}/submit", headers=editor(client, "suzuki")).raise_for_status()
    client.post(f"{path}/approve", headers=editor(client, "tanaka")).raise_for_status()

    this_month = client.get("/api/changes", headers=staff(client)).json()
    mine = [c for c in this_month["changes"] if c["entry_id"] == ENTRY]
    assert {(c["kind"], c["revision"]) for c in mine} >= {("published", made["revision"])}
    # The starter import is marked, so the staff page folds it away; an editor's change is not.
    assert [c["imported"] for c in mine if c["revision"] == made["revision"]] == [False]
    assert any(c["imported"] and c["revision"] == 1 for c in this_month["changes"])
    april = client.get("/api/changes", params={"month": "2099-04"}, headers=staff(client))
    assert [
        (c["entry_id"], c["kind"], c["date"], c["upcoming"]) for c in april.json()["changes"]
    ] == [(ENTRY, "takes_effect", "2099-04-01", True)]
    for month in ("2099-13", "99-04", "2099/04"):
        assert client.get("/api/changes", params={"month": month}).status_code in (401, 422)
        bad = client.get("/api/changes", params={"month": month}, headers=staff(client))
        assert bad.status_code == 422
    upcoming = client.get("/api/entries", params={"upcoming": True}, headers=editor(client))
    assert [(e["entry_id"], e["upcoming_from"]) for e in upcoming.json()["data"]] == [
        (ENTRY, "2099-04-01")
    ]


def test_lists_tell_of_a_newer_draft_and_history_has_diffs(client):
    old = content(client, ENTRY)
    changed = old | {"answer": old["answer"] + "\n\n受付時間が変わりました。"}
    client.post("/api/entries", json=changed, headers=editor(client)).raise_for_status()
    listed = client.get("/api/entries", headers=editor(client)).json()["data"]
    row = next(e for e in listed if e["entry_id"] == ENTRY)
    assert (row["revision"], row["status"]) == (1, "published")
    assert (row["latest_revision"], row["latest_status"]) == (2, "draft")
    history = client.get(f"/api/entries/{ENTRY}/history", headers=editor(client)).json()
    first, second = history["revisions"]
    assert {d["field"] for d in first["diff"]} >= {"id", "title", "answer"}  # vs nothing
    # The first version's empty fields are not 「追加」 (issue 17).
    assert all(any(line["text"] for line in d["lines"]) for d in first["diff"])
    (answer_diff,) = second["diff"]
    assert answer_diff["field"] == "answer"
    assert answer_diff["lines"][-1] == {"op": "insert", "text": "受付時間が変わりました。"}
    assert all(line["op"] == "equal" for line in answer_diff["lines"][:-2])


def handoff(settings, question: str, reason: str, staff_reply: str | None = None) -> int:
    db = open_db(settings.database_path)
    ticket = open_ticket(
        db,
        session_id=SessionIds(b"k" * 32).issue(),
        reason=reason,
        transcript=[
            {"role": "resident", "text": "こんにちは", "intent": "greet"},
            {"role": "resident", "text": question, "intent": "inquiry"},
            {"role": "resident", "text": "/none_of_these", "intent": "none_of_these"},
        ],
        candidates=[{"entry_id": ENTRY, "revision": 1, "score": 0.4}],
    )
    if staff_reply:
        from knowledge.tickets import reply_to_ticket

        reply_to_ticket(db, ticket.id, "sato", staff_reply)
    db.close()
    return ticket.id


def test_staff_propose_a_handoff_as_a_draft_for_editors(client, starter_settings):
    answer = "犬の死亡届は、死亡した日から30日以内に市民課へ届け出てください。"
    ticket = handoff(starter_settings, "飼い犬が死んだときの届け出は？", "none_of_these", answer)
    made = client.post(f"/api/tickets/{ticket}/propose", json={}, headers=staff(client))
    assert made.status_code == 201, made.text
    draft = made.json()
    assert draft["entry_id"] == f"ticket-{ticket}" and draft["status"] == "draft"
    assert draft["questions"] == ["飼い犬が死んだときの届け出は？"]  # not the greeting
    assert draft["answer"] == answer and draft["author"] == "sato"
    assert f"#{ticket}" in draft["staff_notes"]
    # The same question again is taken (by the first draft); another one is a new draft.
    again = client.post(f"/api/tickets/{ticket}/propose", json={}, headers=staff(client))
    assert again.status_code == 422 and again.json()["detail"][0]["field"] == "questions"
    other = {"question": "犬が亡くなったときの手続き"}
    again = client.post(f"/api/tickets/{ticket}/propose", json=other, headers=staff(client))
    assert again.json()["entry_id"] == f"ticket-{ticket}-2"  # never overwrites
    events = audit_log(open_db(starter_settings.database_path), f"ticket-{ticket}")
    assert [(e["action"], e["actor"]) for e in events] == [
        ("propose_from_ticket", "sato"),
        ("ticket.propose", "sato"),
    ]
    # Nothing to propose without an answer, and unknown tickets are 404.
    silent = handoff(starter_settings, "質問だけ", "requested_human")
    refused = client.post(f"/api/tickets/{silent}/propose", json={}, headers=staff(client))
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "answer"
    missing = client.post("/api/tickets/9999/propose", json={}, headers=staff(client))
    assert missing.status_code == 404


def test_unanswered_questions_are_grouped_by_similarity(client, starter_settings):
    for question in ("飼い犬が死んだときの届け出は？", "飼い犬が死んだときの届け出は"):
        handoff(starter_settings, question, "none_of_these")
    handoff(starter_settings, "市営プールの水温は何度ですか", "two_failed_turns")
    body = client.get("/api/unanswered", headers=editor(client)).json()
    sizes = [(g["size"], g["representative"]) for g in body["groups"]]
    assert sizes == [(2, "飼い犬が死んだときの届け出は？"), (1, "市営プールの水温は何度ですか")]
    kinds = {item["kind"] for g in body["groups"] for item in g["items"]}
    assert kinds == {"none_of_these", "two_failed_turns"}
    old = client.get("/api/unanswered", params={"days": 1}, headers=editor(client)).json()
    assert len(old["groups"]) == 2  # all of them are from today
    assert client.get("/api/unanswered", headers=staff(client)).status_code == 403


def test_the_access_log_names_who_read_what(client, caplog):
    caplog.set_level("INFO", logger="madoguchi.access")
    client.get("/api/tickets", headers=staff(client, "sato")).raise_for_status()
    client.get("/api/health").raise_for_status()
    records = {r.route: r for r in caplog.records if r.name == "madoguchi.access"}
    assert records["/api/tickets"].user == "sato"
    assert not hasattr(records["/api/health"], "user")  # residents stay anonymous


def test_a_new_entry_without_an_id_yet_can_be_previewed(client):
    draft = {
        "title": "犬の死亡届",
        "questions": ["飼い犬が死んだときの届け出は？"],
        "answer": "犬が死亡したときは、30日以内に届け出てください。",
    }
    body = {"questions": ["飼い犬が死んだときの届け出は？"], "draft": draft}
    response = client.post("/api/preview", json=body, headers=editor(client))
    assert response.status_code == 200, response.text
    with_draft = response.json()["results"][0]["with_draft"]
    assert with_draft["decision"] == "answer" and with_draft["text"] == draft["answer"]


def test_creating_an_entry_never_adds_a_revision_to_another(client):
    taken = content(client, ENTRY) | {"title": "別の新しいエントリ"}
    refused = client.post("/api/entries?new=true", json=taken, headers=editor(client))
    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {"entry_id": ENTRY, "field": "id", "msg": "is already used by another entry"}
    ]
    assert content(client, ENTRY)["title"] != "別の新しいエントリ"
    fresh = {"id": "inu-shibou", "title": "犬の死亡届", "questions": ["飼い犬が死んだ"]}
    made = client.post(
        "/api/entries?new=true",
        json=fresh | {"answer": "30日以内に届け出てください。"},
        headers=editor(client),
    )
    assert made.status_code == 201 and made.json()["revision"] == 1


def test_a_proposal_never_reads_or_builds_on_another_revision(client, starter_settings):
    """Regression: proposing with an existing entry id copied that entry's newest
    revision (an in-review draft's staff notes and fees came back to staff in full)
    and stacked a draft on it. Now it is refused, and the entry is untouched."""
    from knowledge.workflow import save_draft, submit_for_review

    db = open_db(starter_settings.database_path)
    secret = {"staff_notes": "審査中の内部メモ：来年度から手数料を改定", "fees": "改定案 500円"}
    draft = save_draft(db, content(client, ENTRY) | secret, actor="suzuki")
    submit_for_review(db, ENTRY, draft.revision, actor="suzuki")
    ticket = handoff(starter_settings, "粗大ごみの出し方", "none_of_these", "シールを貼ります。")
    body = {"id": ENTRY, "question": "粗大ごみのシールはどこで買えますか"}
    refused = client.post(f"/api/tickets/{ticket}/propose", json=body, headers=staff(client))
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"entry {ENTRY!r} already exists; a proposal makes a new entry: "
        "leave the id empty or choose one that is not used"
    )
    assert "内部メモ" not in refused.text and "改定案" not in refused.text
    latest = open_db(starter_settings.database_path).execute(
        "SELECT MAX(revision), COUNT(*) FROM revisions WHERE entry_id = ?", [ENTRY]
    )
    assert latest.fetchone() == (draft.revision, draft.revision)  # nothing stacked on it
    # A new id is a new entry built from the ticket alone.
    made = client.post(
        f"/api/tickets/{ticket}/propose", json=body | {"id": "sodai-seal"}, headers=staff(client)
    )
    assert made.status_code == 201, made.text
    assert made.json()["revision"] == 1 and "内部メモ" not in made.text
    assert made.json()["fees"] == "" and made.json()["questions"] == [body["question"]]
