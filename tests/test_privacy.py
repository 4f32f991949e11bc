"""Personal numbers in every form they are typed: masked in what residents and staff
write, wherever it is stored; the rest of each message byte for byte as typed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from knowledge.accounts import LoginFailed, log_in
from knowledge.privacy import clean_page, luhn_valid, mask_found, mask_personal_data
from knowledge.store import audit_log, open_db
from knowledge.tickets import open_ticket, record_feedback, reply_to_ticket, resolve_ticket
from tests.conftest import bearer
from tests.conversation.test_degraded import free_port, settings_for
from tests.personal_data import KEPT_FORMS, MASKED_FORMS, needles, scan


def test_the_table_has_every_form_the_security_test_found():
    assert len(MASKED_FORMS) >= 44
    assert len({form for form, _ in MASKED_FORMS}) == len(MASKED_FORMS)


@pytest.mark.parametrize("form, kind", MASKED_FORMS)
def test_each_form_is_masked_and_the_rest_of_the_message_is_untouched(form, kind):
    # Half-width katakana and full-width letters around it must come back as typed:
    # only the number is replaced (NFKC is for matching, not for what is stored).
    text = f"ｶﾞｲﾄﾞ：ＡＢＣ　{form}、よろしく"
    assert mask_found(text) == (f"ｶﾞｲﾄﾞ：ＡＢＣ　［{kind}］、よろしく", [kind])
    assert mask_personal_data(form) == f"［{kind}］"


@pytest.mark.parametrize("form", KEPT_FORMS)
def test_dates_fees_times_postal_codes_and_ids_are_not_masked(form):
    text = f"受付は{form}です"
    assert mask_personal_data(text) == text


def test_several_numbers_in_one_message_are_each_masked():
    text = "番号は1234 5678 9012、電話は090-1234-5678、メールは a @ example.jp です"
    assert mask_found(text) == (
        "番号は［個人番号］、電話は［電話番号］、メールは ［メールアドレス］ です",
        ["個人番号", "電話番号", "メールアドレス"],
    )


def test_a_log_conversation_reference_is_never_taken_for_a_personal_number():
    from assistant.operations.keys import conversation_ref

    # Hex references held twelve digits in a row now and then (「5c［個人番号］f1」 in a log).
    refs = {conversation_ref(b"k" * 32, f"conversation-{n}") for n in range(2000)}
    assert len(refs) == 2000
    assert all(len(r) == 16 and r.isalpha() and r.isascii() for r in refs)
    assert all(mask_personal_data(f"conversation={r}") == f"conversation={r}" for r in refs)


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    "page, expected",
    [
        ("https://www.example.lg.jp/kurashi/", "https://www.example.lg.jp/kurashi/"),
        ("https://www.example.lg.jp/search?q=090-1234-5678", "https://www.example.lg.jp/search"),
        ("https://www.example.lg.jp/form#tel=09012345678", "https://www.example.lg.jp/form"),
        (
            "https://www.example.lg.jp/u/taro@example.jp/",
            "https://www.example.lg.jp/u/［メールアドレス］/",
        ),
    ],
)
def test_the_page_loses_its_query_string_and_fragment(page, expected):
    assert clean_page(page) == expected


def test_staff_replies_and_notes_are_masked_and_the_audit_keeps_no_text(settings):
    db = open_db(settings.database_path)
    ticket = open_ticket(
        db, session_id="s-1", reason="requested_human", transcript=[], candidates=[]
    )
    replied = reply_to_ticket(db, ticket.id, "sato", "折り返しは０９０－１２３４－５６７８へ")
    assert replied.masked == ("電話番号",)
    assert replied.transcript[-1]["text"] == "折り返しは［電話番号］へ"
    sent = db.execute("SELECT text FROM chat_messages WHERE role = 'staff'").fetchone()[0]
    assert sent == "折り返しは［電話番号］へ"  # what the resident's chat shows
    note = "本人確認済み（個人番号 1234 5678 9012）"
    resolved = resolve_ticket(db, ticket.id, "sato", note)
    assert resolved.note == "本人確認済み（個人番号 ［個人番号］）"
    assert resolved.masked == ("個人番号",)
    detail = audit_log(db)[-1]["detail"]
    assert detail["note"]["chars"] == len(resolved.note) and len(detail["note"]["sha256"]) == 64
    assert "本人確認" not in json.dumps(audit_log(db), ensure_ascii=False)


def test_feedback_and_failed_login_names_are_stored_masked(settings):
    db = open_db(settings.database_path)
    record_feedback(
        db, session_id="s", entry_id=None, revision=None, helpful=False, text="+81 90 1234 5678"
    )
    with pytest.raises(LoginFailed):
        log_in(db, "09012345678", "wrong password", client="10.0.0.1")
    assert db.execute("SELECT text FROM feedback").fetchone()[0] == "［電話番号］"
    assert db.execute("SELECT name FROM login_failures").fetchone()[0] == "［電話番号］"


def test_proposals_mask_what_they_copy(starter_settings):
    from knowledge.workflow import propose_from_ticket

    db = open_db(starter_settings.database_path)
    ticket = open_ticket(db, session_id="s-2", reason="none_of_these", transcript=[], candidates=[])
    draft = propose_from_ticket(
        db,
        ticket.id,
        actor="sato",
        question="犬の登録番号 1234-5678-9012 の変更",
        answer="窓口で hanako @ example.jp 宛に控えを送ります。",
    )
    assert draft.questions == ("犬の登録番号 ［個人番号］ の変更",)
    assert draft.answer == "窓口で ［メールアドレス］ 宛に控えを送ります。"


class Recorder(BaseHTTPRequestHandler):
    """A Rasa REST channel that records what it was sent (what its tracker store would
    keep) and answers like an action that said one thing."""

    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        Recorder.bodies.append(body)
        reply = [{"custom": {"madoguchi": {"decision": "smalltalk", "text": "はい"}}}]
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_rasa_gets_masked_text_and_the_page_without_its_query(starter_settings):
    """Rasa's tracker store keeps what the API sends it: masked text, a bare page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.bodies = []
    try:
        settings = settings_for(starter_settings.home, server.server_address[1])
        with TestClient(create_app(settings)) as client:
            for form, _ in MASKED_FORMS:
                body = {
                    "message": f"連絡先は{form}です",
                    "page": "https://www.example.lg.jp/search?q=" + form,
                }
                assert client.post("/api/chat", json=body).status_code == 200
    finally:
        server.shutdown()
    sent = json.dumps(Recorder.bodies, ensure_ascii=False)
    for (form, kind), body in zip(MASKED_FORMS, Recorder.bodies, strict=True):
        assert body["message"] == f"連絡先は［{kind}］です"
        assert body["metadata"]["page"] == "https://www.example.lg.jp/search"
        assert not any(needle in sent for needle in needles(form))


def chat(client: TestClient, message: str, session: str | None = None) -> dict:
    body = {"message": message, "page": "https://www.example.lg.jp/kurashi/?ref=" + message}
    response = client.post("/api/chat", json=body | ({"session_id": session} if session else {}))
    assert response.status_code == 200, response.text
    return response.json()


def test_no_personal_number_is_stored_anywhere_after_a_conversation(starter_settings):
    """Every form of the table typed through the paths that run without Rasa (the
    degraded chat, a ticket, staff replies and notes, feedback), then every file under
    MADOGUCHI_HOME scanned: SQLite read with SQLite, JSON unescaped."""
    forms = [form for form, _ in MASKED_FORMS]
    settings = settings_for(
        starter_settings.home, free_port(), MADOGUCHI_CHAT_RATE_PER_SESSION="1000"
    )
    with TestClient(create_app(settings)) as client:
        headers = bearer(settings, "sato", "staff")
        first = chat(client, "職員と話したいです。" + forms[0])
        session = first["session_id"]
        assert first["decision"] == "handoff"
        for form in forms[1:]:
            chat(client, f"連絡先は{form}です", session)  # appended to the ticket
        ticket = first["handoff_id"]
        for form in forms:
            text = {"text": f"確認します：{form}"}
            reply = client.post(f"/api/tickets/{ticket}/reply", json=text, headers=headers)
            assert reply.status_code == 200 and reply.json()["masked"], reply.text
        note = "、".join(forms[:10])
        resolved = client.post(
            f"/api/tickets/{ticket}/resolve", json={"note": note}, headers=headers
        )
        assert resolved.status_code == 200 and resolved.json()["masked"]
        # After the resolve the assistant answers again.
        chat(client, "/feedback_negative", session)
    assert scan(settings.home) == []


def test_the_scan_finds_what_is_stored(settings):
    """The scan itself: a number stored as escaped JSON in SQLite is found."""
    db = open_db(settings.database_path)
    db["kb_meta"].insert({"key": "x", "value": json.dumps({"t": "０９０－８９０１－２３４６"})})
    db.close()
    assert scan(settings.home, ["０９０－８９０１－２３４６"]) != []
