"""Nothing acknowledged is lost: the API process is killed (SIGKILL, no chance to clean
up) while clients write through every kind of write it acknowledges, then restarted;
every write that got a success reply must be there, and the database must be sound.

The API runs as its own uvicorn process over a real database; Rasa is not running, so
the chat's writes (feedback, messages to an open ticket, handoffs) take the degraded
path, which writes from the API process itself.
"""

from __future__ import annotations

import os
import random
import signal
import string
import subprocess
import sys
import threading
import time

import httpx

from assistant.operations.config import PROJECT_ROOT
from knowledge.store import open_db
from tests.conftest import bearer, free_ports

WRITERS = 6
RUN_BEFORE_KILL_S = 4.0


def start_api(settings, port: int, log_path) -> subprocess.Popen:
    unused = free_ports(1)[0]
    env = dict(
        os.environ,
        MADOGUCHI_HOME=str(settings.home),
        MADOGUCHI_ENCODER=str(settings.encoder_path),
        # The writers post far faster than a resident types: no chat or ticket limits here.
        MADOGUCHI_CHAT_RATE_PER_CLIENT="1000000",
        MADOGUCHI_CHAT_RATE_PER_SESSION="1000000",
        MADOGUCHI_HANDOFF_RATE_PER_CLIENT="1000000",  # every writer opens a ticket
        MADOGUCHI_RASA_PORT=str(unused),
        MADOGUCHI_ACTION_PORT=str(unused),
        HF_HUB_OFFLINE="1",
    )
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError(f"the API did not start; see {log_path}")


def test_sigkill_during_writes_loses_no_acknowledged_write(starter_settings, tmp_path):
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    as_editor = bearer(starter_settings, "sato", "editor")
    api = start_api(starter_settings, port, tmp_path / "api-1.log")
    client = httpx.Client(base_url=base, timeout=30)
    tickets: list[tuple[str, int]] = []
    for _ in range(WRITERS):
        reply = client.post("/api/chat", json={"message": "職員と話したい"})
        assert reply.status_code == 200 and reply.json()["handoff_id"], reply.text
        session = reply.json()["session_id"]
        tickets.append((session, reply.json()["handoff_id"]))

    acknowledged: dict[str, set] = {
        "draft": set(),
        "reply": set(),
        "turn": set(),
        "feedback": set(),
    }
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def writer(number: int) -> None:
        session, ticket_id = tickets[number]
        http = httpx.Client(base_url=base, timeout=30)
        count = 0
        while not stop.is_set():
            count += 1
            # Letters only: digit runs could be masked as phone numbers, by design.
            marker = f"w{number}-{count}-{''.join(random.choices(string.ascii_lowercase, k=10))}"
            kind = ("draft", "reply", "turn", "feedback")[count % 4]
            try:
                if kind == "draft":
                    body = {
                        "id": f"durable-{marker}",
                        "title": f"耐久テスト {marker}",
                        "questions": [f"耐久テストの質問 {marker}"],
                        "answer": f"耐久テストの回答です。{marker}",
                    }
                    ok = http.post("/api/entries", json=body, headers=as_editor).status_code == 201
                elif kind == "reply":
                    path = f"/api/tickets/{ticket_id}/reply"
                    ok = (
                        http.post(path, json={"text": marker}, headers=as_editor).status_code == 200
                    )
                elif kind == "turn":
                    body = {"session_id": session, "message": f"追加の情報です {marker}"}
                    ok = http.post("/api/chat", json=body).status_code == 200
                else:
                    # A new conversation each time; its server-issued id marks the record.
                    body = {"message": '/feedback_positive{"entry_id":"sodai-gomi"}'}
                    response = http.post("/api/chat", json=body)
                    ok = response.status_code == 200
                    marker = response.json()["session_id"] if ok else "feedback"
            except httpx.HTTPError:
                continue  # in flight when the process died: not acknowledged
            if ok:
                with lock:
                    acknowledged[kind].add(marker)
            elif not stop.is_set():
                errors.append(f"{kind} {marker} refused")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(RUN_BEFORE_KILL_S)
    os.killpg(api.pid, signal.SIGKILL)  # no shutdown, no flush, no goodbye
    api.wait()
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    assert all(len(markers) >= 5 for markers in acknowledged.values()), {
        kind: len(markers) for kind, markers in acknowledged.items()
    }

    print("acknowledged before the kill:", {k: len(v) for k, v in acknowledged.items()})
    api = start_api(starter_settings, port, tmp_path / "api-2.log")
    try:
        db = open_db(starter_settings.database_path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        drafts = {row["entry_id"].removeprefix("durable-") for row in db["revisions"].rows}
        assert acknowledged["draft"] <= drafts
        texts = " ".join(row["transcript"] for row in db["tickets"].rows)
        assert {m for m in acknowledged["turn"] if m not in texts} == set()
        sent = {row["text"] for row in db["chat_messages"].rows}
        assert acknowledged["reply"] <= sent
        rated = {row["session_id"] for row in db["feedback"].rows}
        assert acknowledged["feedback"] <= rated
        # And the restarted API serves them.
        some_ticket = tickets[0][1]
        shown = client.get(f"/api/tickets/{some_ticket}", headers=as_editor).json()
        shown_texts = {turn["text"] for turn in shown["transcript"]}
        mine = {m for m in acknowledged["reply"] if m.startswith("w0-")}
        assert mine and mine <= shown_texts
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=30)
