"""Every error code: its Japanese text, pinned here, and a test that raises it (through
the API where a request can reach it, else from the library directly). The consoles
show these texts as they are: rewording one changes what editors and staff read."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.errors import REQUEST_MESSAGES
from api.main import create_app
from api.residents import SessionIds
from knowledge.errors import MESSAGES, KnowledgeError, message_for
from knowledge.model import InvalidEntry, entry_from_mapping
from knowledge.store import SCHEMA_VERSION, SchemaTooNew, open_db
from knowledge.suggestions import (
    CHANGES_ANSWER,
    SAME_AS_PHRASING,
    SuggestionConflict,
    accept,
    list_suggestions,
    reject,
    suggest,
)
from knowledge.tickets import InvalidReply, open_ticket, reply_to_ticket, resolve_ticket
from tests.conftest import bearer, copy_home, make_settings

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "sodai-gomi"
PLACEHOLDERS = "{{市名}} {{開庁時間}} {{閉庁日}} {{市役所住所}} {{代表電話}}"
CONTROL = "使えない文字（制御文字や見えない書式文字）が含まれています。"
HTML = "HTMLタグ（<script> など）は使えません。文章か、使える書式で入力してください。"
PERSONAL = (
    "マイナンバーやカード番号のような番号が含まれています。"
    "エントリは公開されるため、個人の番号は書けません。"
)

# code -> (params, the Japanese text with them)
TEXTS = {
    "entry.not_object": (
        {"got": "list"},
        "エントリは項目名と値の組（オブジェクト）で書いてください。",
    ),
    "field.unknown": ({}, "この項目名は使えません。"),
    "id.pattern": (
        {},
        "半角英小文字・数字・ハイフンの80文字以内で、英小文字か数字で始めてください。",
    ),
    "id.taken": ({}, "このIDはすでに使われています。別のIDを入力してください。"),
    "text.not_text": ({"got": "int"}, "文字で入力してください。"),
    "text.required": ({}, "入力してください。"),
    "text.too_long": (
        {"length": 201, "limit": 200},
        "201文字あります。200文字以内にしてください。",
    ),
    "text.lone_surrogate": ({}, "使えない文字が含まれています。"),
    "text.control_characters": ({}, CONTROL),
    "text.html": ({}, HTML),
    "text.personal_number": ({}, PERSONAL),
    "list.not_list": ({"got": "str"}, "文字の一覧で入力してください。"),
    "list.required": ({}, "1行以上入力してください。"),
    "list.too_many": ({"count": 51, "limit": 50}, "51件あります。50件以内にしてください。"),
    "item.empty": ({"item": 2}, "2行目が空です。"),
    "item.too_long": (
        {"item": 1, "length": 501, "limit": 500},
        "1行目が501文字あります。500文字以内にしてください。",
    ),
    "item.lone_surrogate": ({"item": 2}, "2行目に使えない文字が含まれています。"),
    "item.control_characters": ({"item": 1}, "1行目に" + CONTROL),
    "item.html": ({"item": 1}, "1行目：" + HTML),
    "item.personal_number": ({"item": 1}, "1行目：" + PERSONAL),
    "item.multiline": ({"item": 1}, "1行目：1行で入力してください。"),
    "item.phrasing_taken": (
        {"item": 1, "question": "粗大ごみ", "other_entry": ENTRY, "other_question": "粗大ごみ"},
        f"1行目「粗大ごみ」は、エントリ {ENTRY} の「粗大ごみ」と同じ言い回しです。"
        "言い回しは1つのエントリにだけ登録できます。",
    ),
    "date.with_time": ({}, "日付（YYYY-MM-DD）だけを入力してください。時刻は付けられません。"),
    "date.invalid": ({"value": "2026-13-01"}, "日付を正しく入力してください。"),
    "date.before_from": (
        {"valid_from": "2026-04-01", "valid_until": "2026-03-31"},
        "終了日が施行日より前になっています。",
    ),
    "answer.unknown_placeholder": (
        {"name": "町名", "allowed": ["市名", "開庁時間", "閉庁日", "市役所住所", "代表電話"]},
        "差し込み {{町名}} は使えません。使えるのは " + PLACEHOLDERS + " です。",
    ),
    "answer.unsafe_link": (
        {"target": "javascript:x"},
        "リンク先「javascript:x」は http://、https://、mailto:、tel: のいずれかで始めてください。",
    ),
    "source_url.scheme": ({}, "http:// または https:// で始まるURLを入力してください。"),
    "entry.invalid": ({}, "入力内容を確認してください。"),
    "entry.not_found": ({"entry_id": "nai", "revision": None}, "エントリ nai が見つかりません。"),
    "workflow.wrong_status": (
        {"entry_id": ENTRY, "revision": 1, "status": "published", "needed": ["draft"]},
        "この版の状態が変わっています。最新の状態を表示しましたので、もう一度お試しください。",
    ),
    "workflow.self_approval": (
        {"entry_id": ENTRY, "revision": 2},
        "ご自身が作成した版は承認できません。別の編集者に承認を依頼してください。",
    ),
    "workflow.nothing_to_archive": (
        {"entry_id": "shitagaki"},
        "公開中の版がないため、公開を停止できません。",
    ),
    "workflow.proposal_id_taken": (
        {"entry_id": ENTRY},
        f"エントリ {ENTRY} はすでにあります。提案は新しいエントリになります。"
        "IDを空にするか、使われていないIDを入力してください。",
    ),
    "ticket.not_found": ({"ticket_id": 99}, "問い合わせ #99 が見つかりません。"),
    "ticket.closed": ({"ticket_id": 3}, "問い合わせ #3 はすでに対応済みです。"),
    "reply.empty": ({"field": "text"}, "返信を入力してください。"),
    "reply.too_long": (
        {"field": "note", "length": 2001, "limit": 2000},
        "対応メモが2001文字あります。2000文字以内にしてください。",
    ),
    "reply.control_characters": ({"field": "text"}, "返信に" + CONTROL),
    "reply.html": ({"field": "note"}, "対応メモにHTMLタグは使えません。文章で入力してください。"),
    "suggestion.empty": ({"field": "text"}, "言い回しを入力してください。"),
    "suggestion.too_long": (
        {"field": "reason", "length": 501, "limit": 500},
        "却下の理由が501文字あります。500文字以内にしてください。",
    ),
    "suggestion.control_characters": ({"field": "text"}, "言い回しに" + CONTROL),
    "suggestion.html": (
        {"field": "text"},
        "言い回しにHTMLタグは使えません。文章で入力してください。",
    ),
    "suggestion.unknown_entry": (
        {"entry_id": "nai-entry"},
        "エントリ nai-entry は見つからないか、まだ公開されたことがありません。"
        "公開中のエントリを選んでください。",
    ),
    "suggestion.not_found": ({"suggestion_id": 9, "entry_id": None}, "提案 #9 が見つかりません。"),
    "suggestion.decided": (
        {"suggestion_id": 4, "status": "accepted"},
        "提案 #4 はすでに採用されています。最新の状態を表示しましたので、確認してください。",
    ),
    "suggestion.nothing_selected": ({}, "提案を1つ以上選んでください。"),
    "suggestion.unknown_status": (
        {"status": "pending", "allowed": ["open", "accepted", "rejected"]},
        "提案の状態は open（未対応）、accepted（採用済み）、rejected（却下済み）の"
        "いずれかで指定してください。",
    ),
    "suggestion.same_as_phrasing": (
        {"wording": "ペットボトル", "entry_id": "gomi-bunbetsu", "question": "ペットボトル"},
        "「ペットボトル」は、エントリ gomi-bunbetsu の言い回し「ペットボトル」と同じです。"
        "言い回しは1つのエントリにだけ登録できます。",
    ),
    "suggestion.changes_answer": (
        {"wording": "ごみ", "entry_id": "gomi-bunbetsu", "question": "ごみの分け方"},
        "「ごみ」を加えると、エントリ gomi-bunbetsu の言い回し「ごみの分け方」への"
        "回答が変わります。内容を確かめてから採用してください。",
    ),
    "login.failed": ({}, "ユーザー名またはパスワードが違います。"),
    "login.throttled": (
        {"retry_after_s": 900},
        "ログインの失敗が続いたため、一時的にログインできません。",
    ),
    "session.not_found": (
        {"ref": "0123456789abcdef"},
        "このセッションは見つかりません。すでに終了している可能性があります。",
    ),
    "schema.too_new": (
        {"version": 7, "supported": 6},
        "データベースがこのプログラムより新しい版で作られているため、サービスを提供できません。"
        "管理者は Madoguchi を新しい版に更新してください。",
    ),
}
REQUEST_TEXTS = {
    "request.validation": ({}, "入力内容を確認してください。"),
    "request.missing": ({}, "入力してください。"),
    "request.string_unicode": ({}, "使えない文字が含まれています。"),
    "request.string_too_long": ({"max_length": 80}, "80文字以内にしてください。"),
    "request.invalid": ({"type": "list_type"}, "この項目の値が正しくありません。"),
}


def test_every_code_has_its_japanese_text():
    assert set(MESSAGES) == set(TEXTS)
    for code, (params, text) in TEXTS.items():
        assert message_for(code, params) == text, code
    assert set(REQUEST_MESSAGES) == set(REQUEST_TEXTS)
    for code, (params, text) in REQUEST_TEXTS.items():
        assert REQUEST_MESSAGES[code].format_map(params) == text, code


def test_the_entry_not_found_text_names_the_revision_when_there_is_one():
    params = {"entry_id": ENTRY, "revision": 3}
    assert message_for("entry.not_found", params) == f"エントリ {ENTRY} の第3版が見つかりません。"


# ---------------------------------------------------------------- through the API

GOOD = {"id": "kaku-nin", "title": "確認用", "questions": ["確認用の質問"], "answer": "答え"}
MY_NUMBER = "1234 5678 9012"


@pytest.fixture(scope="module")
def client(starter_template, tmp_path_factory):
    home = copy_home(starter_template, tmp_path_factory.mktemp("error-codes") / "home")
    with TestClient(create_app(make_settings(home))) as running:
        yield running


def editor(client, name="suzuki"):
    return bearer(client.app.state.settings, name, "editor")


def staff(client):
    return bearer(client.app.state.settings, "sato", "staff")


def problem_codes(response) -> list[str]:
    return [p["code"] for p in response.json()["problems"]]


# (the field changed in a good entry, its value, the code of the problem it makes)
ENTRY_PROBLEMS = [
    ("id", "Bad_ID", "id.pattern"),
    ("title", "", "text.required"),
    ("title", "あ" * 201, "text.too_long"),
    ("title", "t\x00", "text.control_characters"),
    ("title", "<b>題</b>", "text.html"),
    ("title", f"番号 {MY_NUMBER}", "text.personal_number"),
    ("questions", [], "list.required"),
    ("tags", [f"t{n}" for n in range(51)], "list.too_many"),
    ("questions", ["  "], "item.empty"),
    ("questions", ["あ" * 501], "item.too_long"),
    ("questions", ["q\x1b[2J"], "item.control_characters"),
    ("questions", ["<i>q</i>"], "item.html"),
    ("questions", [f"番号は {MY_NUMBER}"], "item.personal_number"),
    ("questions", ["一行目\n二行目"], "item.multiline"),
    ("questions", ["粗大ごみ 出し方"], "item.phrasing_taken"),
    ("valid_from", "2026-13-01", "date.invalid"),
    ("answer", "{{町名}}へ", "answer.unknown_placeholder"),
    ("answer", "[押す](javascript:alert(1))", "answer.unsafe_link"),
    ("source_url", "ftp://example.jp/", "source_url.scheme"),
]


@pytest.mark.parametrize("field, value, code", ENTRY_PROBLEMS, ids=[c for *_, c in ENTRY_PROBLEMS])
def test_each_entry_problem_comes_back_with_its_code_and_text(client, field, value, code):
    response = client.post("/api/entries", json=GOOD | {field: value}, headers=editor(client))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "entry.invalid" and body["message"] == "入力内容を確認してください。"
    (problem,) = [p for p in body["problems"] if p["code"] == code]
    assert problem["message"] == message_for(code, problem["params"])
    assert problem["field"] == field
    assert problem["entry_id"] == (GOOD | {field: value})["id"]
    # The old shape stays: one {entry_id, field, msg} per problem, in the same order.
    assert [(p["field"], p["code"]) for p in body["problems"]] == [
        (p["field"], c) for p, c in zip(body["detail"], problem_codes(response), strict=True)
    ]


def test_the_dates_in_the_wrong_order(client):
    dates = {"valid_from": "2026-04-01", "valid_until": "2026-03-31"}
    response = client.post("/api/entries", json=GOOD | dates, headers=editor(client))
    assert problem_codes(response) == ["date.before_from"]
    assert response.json()["problems"][0]["message"] == "終了日が施行日より前になっています。"


def test_a_new_entry_with_a_taken_id(client):
    taken = GOOD | {"id": ENTRY, "questions": ["まったく別の質問です"]}
    response = client.post("/api/entries?new=true", json=taken, headers=editor(client))
    assert response.status_code == 422 and problem_codes(response) == ["id.taken"]
    assert response.json()["problems"][0]["message"] == TEXTS["id.taken"][1]


def test_a_preview_draft_problem_names_its_field(client):
    body = {"questions": ["粗大ごみ"], "draft": GOOD | {"id": "", "answer": "{{町名}}"}}
    response = client.post("/api/preview", json=body, headers=editor(client))
    assert response.status_code == 422 and problem_codes(response) == ["answer.unknown_placeholder"]


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    if code in REQUEST_MESSAGES:
        expected = REQUEST_MESSAGES[code].format_map(body["params"])
    else:
        expected = message_for(code, body["params"])
    assert body["code"] == code and body["message"] == expected
    return body


def test_workflow_errors(client):
    writer, other = editor(client), editor(client, "tanaka")
    missing = client.get("/api/entries/nai-entry/history", headers=writer)
    body = error_of(missing, 404, "entry.not_found")
    assert body["detail"] == "no entry with id 'nai-entry'"
    assert body["message"] == "エントリ nai-entry が見つかりません。"
    published = client.post(f"/api/entries/{ENTRY}/revisions/1/submit", headers=writer)
    body = error_of(published, 409, "workflow.wrong_status")
    assert body["params"] == {
        "entry_id": ENTRY,
        "revision": 1,
        "status": "published",
        "needed": ["draft"],
    }
    draft = client.post("/api/entries", json=GOOD | {"id": "shitagaki"}, headers=writer).json()
    archive = client.post("/api/entries/shitagaki/archive", json={}, headers=writer)
    error_of(archive, 409, "workflow.nothing_to_archive")
    revision = draft["revision"]
    assert client.post(
        f"/api/entries/shitagaki/revisions/{revision}/submit", headers=writer
    ).is_success
    own = client.post(f"/api/entries/shitagaki/revisions/{revision}/approve", headers=writer)
    error_of(own, 409, "workflow.self_approval")
    gone = client.post(f"/api/entries/shitagaki/revisions/{revision + 5}/approve", headers=other)
    assert error_of(gone, 404, "entry.not_found")["params"]["revision"] == revision + 5


def ticket(client) -> int:
    db = open_db(client.app.state.settings.database_path)
    opened = open_ticket(
        db,
        session_id=SessionIds(b"k" * 32).issue(),
        reason="requested_human",
        transcript=[{"role": "resident", "text": "粗大ごみの相談です", "intent": "inquiry"}],
        candidates=[],
    )
    return opened.id


def test_ticket_errors(client):
    headers = staff(client)
    error_of(client.get("/api/tickets/999999", headers=headers), 404, "ticket.not_found")
    number = ticket(client)
    reply = f"/api/tickets/{number}/reply"
    body = error_of(client.post(reply, json={"text": "   "}, headers=headers), 422, "reply.empty")
    assert body["params"] == {"field": "text"} and body["message"] == "返信を入力してください。"
    error_of(
        client.post(reply, json={"text": "a\x00"}, headers=headers), 422, "reply.control_characters"
    )
    error_of(client.post(reply, json={"text": "<b>x</b>"}, headers=headers), 422, "reply.html")
    resolve = f"/api/tickets/{number}/resolve"
    error_of(client.post(resolve, json={"note": "<i>x</i>"}, headers=headers), 422, "reply.html")
    propose = client.post(f"/api/tickets/{number}/propose", json={"id": ENTRY}, headers=headers)
    error_of(propose, 409, "workflow.proposal_id_taken")
    assert client.post(resolve, json={}, headers=headers).is_success
    closed = client.post(reply, json={"text": "まだですか"}, headers=headers)
    body = error_of(closed, 409, "ticket.closed")
    assert body["message"] == f"問い合わせ #{number} はすでに対応済みです。"
    assert "already resolved" in body["detail"]


def test_account_errors(client, tag="error-codes"):
    name = f"kato-{tag}"
    headers = bearer(client.app.state.settings, name, "staff")
    wrong = {"name": name, "password": "wrong password!"}
    desk = TestClient(client.app, client=(f"desk-{tag}", 50000))
    failed = desk.post("/api/auth/login", json=wrong)
    # A failed login says only that, whatever the cause.
    assert failed.status_code == 401 and failed.json() == {"detail": TEXTS["login.failed"][1]}
    for _ in range(4):
        assert desk.post("/api/auth/login", json=wrong).status_code == 401
    throttled = desk.post("/api/auth/login", json=wrong)
    body = error_of(throttled, 429, "login.throttled")
    assert body["detail"] == body["message"]
    assert int(throttled.headers["Retry-After"]) == body["params"]["retry_after_s"] > 0
    unknown = client.delete("/api/auth/sessions/0123456789abcdef", headers=headers)
    assert error_of(unknown, 404, "session.not_found")["params"] == {"ref": "0123456789abcdef"}


# (the request, the code of its problem)
REQUEST_PROBLEMS = [
    ({"title": "t", "questions": ["q"], "answer": "a"}, "request.missing"),
    (GOOD | {"id": ""}, "request.missing"),
    (GOOD | {"id": "a" * 81}, "request.string_too_long"),
    (GOOD | {"questions": "一つだけ"}, "request.invalid"),
]


@pytest.mark.parametrize("body, code", REQUEST_PROBLEMS)
def test_request_validation_problems_have_codes(client, body, code):
    response = client.post("/api/entries", json=body, headers=editor(client))
    body = error_of(response, 422, "request.validation")
    (problem,) = body["problems"]
    assert problem["code"] == code and problem["loc"] == body["detail"][0]["loc"]
    assert problem["message"] == REQUEST_MESSAGES[code].format_map(problem["params"])


def test_a_lone_surrogate_is_a_request_problem(client):
    raw = b'{"id": "x", "title": "\\ud800", "questions": ["q"], "answer": "a"}'
    headers = editor(client) | {"Content-Type": "application/json"}
    response = client.post("/api/entries", content=raw, headers=headers)
    body = error_of(response, 422, "request.validation")
    assert [p["code"] for p in body["problems"]] == ["request.string_unicode"]


# ---------------------------------------------------------------- in the library
# What no request can reach: the API's own validation stops it first (types, unknown
# fields, lone surrogates, over-long replies), or it needs a database from the future.


def problem(data) -> list[tuple[str, str]]:
    with pytest.raises(InvalidEntry) as error:
        entry_from_mapping(data)
    for found in error.value.problems:
        assert found.message == message_for(found.code, found.params)
    return [(p[1], p.code) for p in error.value.problems]


def test_problems_no_request_reaches():
    assert problem(["not", "an", "entry"]) == [("-", "entry.not_object")]
    assert problem(GOOD | {"colour": "red"}) == [("colour", "field.unknown")]
    assert problem(GOOD | {"title": 5}) == [("title", "text.not_text")]
    assert problem(GOOD | {"title": "\ud800"}) == [("title", "text.lone_surrogate")]
    assert problem(GOOD | {"tags": "one"}) == [("tags", "list.not_list")]
    assert problem(GOOD | {"questions": ["q", "\udfff"]}) == [("questions", "item.lone_surrogate")]
    noon = dt.datetime(2026, 4, 1, 12)
    assert problem(GOOD | {"valid_from": noon}) == [("valid_from", "date.with_time")]


def test_an_over_long_note_and_a_newer_database(starter_template, tmp_path):
    settings = make_settings(copy_home(starter_template, tmp_path / "home"))
    db = open_db(settings.database_path)
    number = open_ticket(
        db, session_id="s" * 16, reason="requested_human", transcript=[], candidates=[]
    ).id
    with pytest.raises(InvalidReply) as error:
        resolve_ticket(db, number, "sato", "あ" * 2001)
    assert error.value.code == "reply.too_long"
    assert error.value.message == "対応メモが2001文字あります。2000文字以内にしてください。"
    with pytest.raises(InvalidReply):
        reply_to_ticket(db, number, "sato", "")
    error = SchemaTooNew(SCHEMA_VERSION + 1)
    assert error.code == "schema.too_new" and error.message == TEXTS["schema.too_new"][1]
    assert error.params == {"version": SCHEMA_VERSION + 1, "supported": SCHEMA_VERSION}


def test_suggestion_errors_in_the_library(starter_template, tmp_path):
    db = open_db(make_settings(copy_home(starter_template, tmp_path / "home")).database_path)

    def code_of(call, **args) -> str:
        with pytest.raises(KnowledgeError) as error:
            call(db, **args)
        assert error.value.message == message_for(error.value.code, error.value.params)
        return error.value.code

    wording = {"entry_id": ENTRY, "source": "staff", "actor": "sato"}
    assert code_of(suggest, **wording, text=" ") == "suggestion.empty"
    assert code_of(suggest, **wording, text="あ" * 201) == "suggestion.too_long"
    assert code_of(suggest, **wording, text="ご\x1bみ") == "suggestion.control_characters"
    assert code_of(suggest, **wording, text="<p>ごみ") == "suggestion.html"
    unknown = wording | {"entry_id": "nai-entry"}
    assert code_of(suggest, **unknown, text="ベッドの捨て方") == "suggestion.unknown_entry"
    number = suggest(db, **wording, text="ベッドの捨て方")
    assert (
        code_of(accept, entry_id=ENTRY, items=[], actor="suzuki") == "suggestion.nothing_selected"
    )
    missing = {"entry_id": ENTRY, "items": [(number + 1, None)], "actor": "suzuki"}
    assert code_of(accept, **missing) == "suggestion.not_found"
    reject(db, [number], actor="suzuki")
    taken = {"entry_id": ENTRY, "items": [(number, None)], "actor": "suzuki"}
    assert code_of(accept, **taken) == "suggestion.decided"
    assert code_of(list_suggestions, status="pending") == "suggestion.unknown_status"
    for code in (SAME_AS_PHRASING, CHANGES_ANSWER):
        conflict = SuggestionConflict(code, wording="ごみ", entry_id="x", question="ごみ")
        assert conflict.code in ("suggestion.same_as_phrasing", "suggestion.changes_answer")


def test_every_code_is_used_in_the_code_and_reached_by_a_test():
    """Each code is written where it is raised (or built there from a kind), and this
    file reaches it."""
    source = "\n".join(
        path.read_text()
        for folder in ("knowledge", "api")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "errors.py"
    )
    built = {"text.lone_surrogate", "text.control_characters"}  # f"text.{kind}"
    built |= {"item.lone_surrogate", "item.control_characters"}  # f"item.{kind}"
    built |= {"request.string_unicode", "request.string_too_long", "request.missing"}
    kinds = ("empty", "control_characters", "too_long", "html")  # model.checked_text
    built |= {f"{prefix}.{kind}" for prefix in ("reply", "suggestion") for kind in kinds}
    for code in MESSAGES:
        assert code in built or f'"{code}"' in source, f"{code} is raised nowhere"
    this = Path(__file__).read_text()
    tests = this.split("# ----", 1)[1]  # below the texts: the tests
    reached = set(re.findall(r'"([a-z_]+\.[a-z_]+)"', tests))
    assert set(MESSAGES) | set(REQUEST_MESSAGES) <= reached
