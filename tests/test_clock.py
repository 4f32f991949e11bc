"""One clock, the city's: on a UTC server a revision effective 2027-04-01 is answered from
midnight in Japan (2027-03-31T15:00Z), not from 09:00 JST when the server's date turns.

The command and the API run as real processes on a UTC clock fixed by Debian's faketime
(libfaketime fakes the system clock the program reads); the chat goes the degraded way
(nothing listens on the Rasa port), which searches with the same engine code the Rasa
action does. Real database, encoder and index; nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.conversation.dialogue import handoff_reply
from assistant.retrieval.engine import Engine
from knowledge.city import CityProfile
from knowledge.store import get_entry, open_db
from knowledge.waiting import Wait, japanese_duration
from knowledge.workflow import approve, save_draft, submit_for_review
from tests.conftest import PASSWORD, account, copy_home, free_ports, make_settings

PREMIUM = "kokuho-premium-calculation"
NEW_ANSWER = "令和9年度（2027年4月から）の保険料率で計算します。"
# UTC moments (the server's clock) and what they are at the city hall.
AFTER_MIDNIGHT_JST = "2027-03-31 15:30:00"  # 2027-04-01 00:30 JST
BEFORE_MIDNIGHT_JST = "2027-03-31 14:30:00"  # 2027-03-31 23:30 JST

pytestmark = pytest.mark.skipif(not shutil.which("faketime"), reason="needs Debian's faketime")


@pytest.fixture(scope="module")
def scheduled(starter_template, tmp_path_factory):
    """A home where the premium entry has revision 2 published, effective 2027-04-01;
    yields (settings, question, old answer)."""
    home = copy_home(starter_template, tmp_path_factory.mktemp("clock") / "home")
    settings = make_settings(home)
    db = open_db(settings.database_path)
    current = get_entry(db, PREMIUM)
    content = {**current.content(), "answer": f"{NEW_ANSWER}\n\n{current.answer}"}
    draft = save_draft(db, content | {"valid_from": "2027-04-01"}, actor="sato")
    submit_for_review(db, PREMIUM, draft.revision, actor="sato")
    approve(db, PREMIUM, draft.revision, actor="suzuki")
    db.close()
    Engine.load(settings).db.close()  # the index is current: no process rebuilds it
    account(settings, "clock-staff", "staff")
    account(settings, "clock-editor", "editor")
    return settings, current.questions[0], current.answer


def faked(moment: str, settings, **env: str) -> dict:
    """The environment of a process on a UTC server whose clock reads ``moment``."""
    return {
        **os.environ,
        "TZ": "UTC",
        "MADOGUCHI_HOME": str(settings.home),
        "MADOGUCHI_ENCODER": str(settings.encoder_path),
        "HF_HUB_OFFLINE": "1",
        # Timeouts and rate windows keep the real monotonic clock.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        **env,
    }


def under_faketime(moment: str, *command: str) -> list[str]:
    return ["faketime", "-f", f"@{moment}", *command]


def test_the_fake_clock_is_a_utc_server_where_the_date_differs_from_the_citys(scheduled):
    settings, _, _ = scheduled
    script = (
        "import datetime as dt; from knowledge.clock import city_now;"
        "print(dt.date.today(), city_now().isoformat(timespec='minutes'))"
    )
    result = subprocess.run(
        under_faketime(AFTER_MIDNIGHT_JST, sys.executable, "-c", script),
        env=faked(AFTER_MIDNIGHT_JST, settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The server's own date is still the 31st: a program asking it would be wrong.
    assert result.stdout.split() == ["2027-03-31", "2027-04-01T00:30+09:00"]


@pytest.mark.parametrize(
    ("moment", "revision"), [(AFTER_MIDNIGHT_JST, 2), (BEFORE_MIDNIGHT_JST, 1)]
)
def test_madoguchi_search_answers_the_revision_in_force_at_the_city_hall(
    scheduled, moment, revision
):
    settings, question, old_answer = scheduled
    result = subprocess.run(
        under_faketime(
            moment, sys.executable, "-m", "assistant.operations.cli", "search", question
        ),
        env=faked(moment, settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "rebuilding" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("answer "), result.stdout
    assert lines[1].startswith(f"1. {PREMIUM} r{revision} "), result.stdout
    answer = "\n".join(lines[lines.index("") + 1 :])
    assert (NEW_ANSWER in answer) == (revision == 2)
    assert old_answer.splitlines()[0] in answer


class FakedApi:
    """The API (uvicorn, as the launcher starts it) on a UTC clock reading ``moment``."""

    def __init__(self, settings, moment: str):
        self.port, rasa = free_ports(2)  # nothing listens on the Rasa port: degraded chat
        env = faked(
            moment,
            settings,
            MADOGUCHI_API_PORT=str(self.port),
            MADOGUCHI_RASA_PORT=str(rasa),
            MADOGUCHI_ACTION_PORT=str(rasa),
        )
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.port)]
        self.log = Path(settings.home) / f"api-{self.port}.log"
        with self.log.open("wb") as log:
            # faketime runs the command as its child and does not pass signals on: the
            # two are stopped together, as a process group.
            self.process = subprocess.Popen(
                under_faketime(moment, *command),
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def wait(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text("utf-8", "replace")
            try:
                if self.client.get("/api/health").status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"the API did not start: {self.log.read_text('utf-8', 'replace')}")

    def token(self, name: str) -> dict[str, str]:
        """A token issued by the faked server (its expiry is on the faked clock)."""
        response = self.client.post("/api/auth/token", json={"name": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def close(self) -> None:
        self.client.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the server itself, after faketime
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.killpg(self.process.pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("moment", "revision", "today"),
    [(AFTER_MIDNIGHT_JST, 2, "2027-04-01"), (BEFORE_MIDNIGHT_JST, 1, "2027-03-31")],
)
def test_the_api_answers_and_marks_by_the_citys_today(scheduled, moment, revision, today):
    settings, question, old_answer = scheduled
    api = FakedApi(settings, moment)
    try:
        api.wait()
        staff = api.token("clock-staff")
        response = api.client.get("/api/answers", params={"q": question}, headers=staff)
        assert response.status_code == 200, response.text
        best = response.json()["results"][0]
        assert (best["entry_id"], best["revision"]) == (PREMIUM, revision)
        assert (NEW_ANSWER in best["answer"]) == (revision == 2)

        body = {"message": question, "page": "https://www.example.lg.jp/kurashi/"}
        reply = api.client.post("/api/chat", json=body)
        assert reply.status_code == 200, reply.text
        chat = reply.json()
        assert chat["degraded"] is True and chat["decision"] == "answer"
        answer = chat["replies"][0]
        assert (answer["entry_id"], answer["revision"]) == (PREMIUM, revision)
        assert answer["text"] == best["answer"]

        # The editor page marks 適用中/予定 by the today the server sends.
        editor = api.token("clock-editor")
        listed = api.client.get("/api/entries", params={"q": "国民健康保険料"}, headers=editor)
        assert listed.status_code == 200, listed.text
        assert listed.json()["today"] == today
        shown = {e["entry_id"]: e["revision"] for e in listed.json()["data"]}
        assert shown[PREMIUM] == revision
        upcoming = api.client.get("/api/entries", params={"upcoming": "true"}, headers=editor)
        assert (PREMIUM in [e["entry_id"] for e in upcoming.json()["data"]]) == (revision == 1)
        history = api.client.get(f"/api/entries/{PREMIUM}/history", headers=editor).json()
        assert history["today"] == today
    finally:
        api.close()


OFFICE_HOURS_UTC = "2027-03-31 01:00:00"  # Wednesday 2027-03-31 10:00 JST


def city_moment(utc: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(CityProfile.load().tz)


def test_a_handoff_during_office_hours_says_how_long_from_the_queue_and_staff(scheduled):
    """At 10:00 in the city: with nobody at a console the wait is the profile's target;
    with one staff member signed in, it is the conversations ahead times their pace."""
    settings, _, _ = scheduled
    city = CityProfile.load(settings.city_path)
    api = FakedApi(settings, OFFICE_HOURS_UTC)
    try:
        api.wait()
        first = api.client.post("/api/chat", json={"message": "職員と話したいです"}).json()
        assert first["decision"] == "handoff", first
        told = first["replies"][-1]["text"]
        assert told == handoff_reply(city, city_moment(OFFICE_HOURS_UTC), Wait(30, 0, 0))
        assert told.startswith("担当の職員がこのチャットでお返事します。お返事まで30分ほど")
        login = {"name": "clock-staff", "password": PASSWORD}
        assert api.client.post("/api/auth/login", json=login).status_code == 200
        second = httpx.post(
            f"http://127.0.0.1:{api.port}/api/chat", json={"message": "職員と話したいです"}
        ).json()
        per = city.minutes_per_conversation
        assert f"お返事まで{japanese_duration(2 * per)}ほど" in second["replies"][-1]["text"]
        assert "（いま1件のお問い合わせが先にお待ちです）" in second["replies"][-1]["text"]
    finally:
        api.close()
