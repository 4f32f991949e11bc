"""The wait a handed-off resident is told: from the queue and the staff at a console,
and the handoff message built from it (assistant.conversation.dialogue.handoff_reply)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from assistant.conversation.dialogue import HANDOFF_KEPT, HANDOFF_REASONS, handoff_reply
from knowledge.accounts import add_user, log_in
from knowledge.city import CityProfile
from knowledge.store import open_db, write_transaction
from knowledge.tickets import claim_ticket, open_ticket
from knowledge.waiting import Wait, expected_wait, japanese_duration, staff_on_duty

TOKYO = ZoneInfo("Asia/Tokyo")
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "knowledge.db")
    yield database
    database.close()


@pytest.fixture(scope="module")
def city() -> CityProfile:
    return CityProfile.load()


def ticket(db, session: str):
    return open_ticket(
        db, session_id=session, reason="requested_human", transcript=[], candidates=[]
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_with_nobody_at_a_console_the_wait_is_the_profiles_target(db, city):
    ticket(db, "a" * 20)
    assert expected_wait(db, city, now()) == Wait(city.reply_target_minutes, 1, 0)


def test_the_wait_grows_with_the_unclaimed_tickets_and_shrinks_with_staff(db, city):
    add_user(db, "sato", "staff", PASSWORD)
    add_user(db, "suzuki", "staff", PASSWORD)
    log_in(db, "sato", PASSWORD, client="127.0.0.1")
    log_in(db, "sato", PASSWORD, client="127.0.0.2")  # the same person on two screens
    log_in(db, "sato", PASSWORD, client="127.0.0.1", kind="token", lifetime_s=3600)
    assert staff_on_duty(db, now()) == 1
    per = city.minutes_per_conversation
    first, second, _ = (ticket(db, c * 20) for c in "abc")
    assert expected_wait(db, city, now()) == Wait(4 * per, 3, 1)
    claim_ticket(db, first.id, "sato")  # being answered: not ahead of a newcomer
    assert expected_wait(db, city, now()) == Wait(3 * per, 2, 1)
    log_in(db, "suzuki", PASSWORD, client="127.0.0.3")
    assert expected_wait(db, city, now()) == Wait(2 * per, 2, 2)  # ceil(3 / 2) rounds


def test_a_console_left_alone_for_a_while_is_not_on_duty(db):
    add_user(db, "sato", "staff", PASSWORD)
    log_in(db, "sato", PASSWORD, client="127.0.0.1")
    long_ago = (now() - dt.timedelta(minutes=16)).isoformat(timespec="seconds")
    with write_transaction(db):
        db.execute("UPDATE auth_sessions SET created_at = ?, last_seen_at = ?", [long_ago] * 2)
    assert staff_on_duty(db, now()) == 0


@pytest.mark.parametrize(
    "minutes, text",
    [(1, "5分"), (5, "5分"), (12, "15分"), (30, "30分"), (60, "1時間"), (88, "1時間30分")],
)
def test_japanese_duration(minutes, text):
    assert japanese_duration(minutes) == text


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=TOKYO)


def test_during_office_hours_the_resident_is_told_how_long_and_that_the_chat_is_kept(city):
    reply = handoff_reply(city, at(2026, 11, 27, 10, 0), Wait(20, 3, 2))
    assert reply == (
        "担当の職員がこのチャットでお返事します。お返事まで20分ほどかかる見込みです"
        "（いま3件のお問い合わせが先にお待ちです）。" + HANDOFF_KEPT
    )
    target = handoff_reply(city, at(2026, 11, 27, 10, 0))  # no queue known: the target
    assert f"お返事まで{japanese_duration(city.reply_target_minutes)}ほど" in target
    assert "先にお待ち" not in target


def test_a_wait_past_closing_time_says_when_the_reply_comes_instead(city):
    reply = handoff_reply(city, at(2026, 11, 27, 17, 0), Wait(30, 0, 1))  # Friday 17:00
    assert "お返事まで30分ほど" in reply
    assert (
        "本日の受付時間内にお返事できないときは、11月30日（月）8時30分以降にお返事します。" in reply
    )


def test_a_handoff_after_two_misses_says_why(city):
    reply = handoff_reply(city, at(2026, 11, 27, 10, 0), Wait(10, 0, 1), "two_failed_turns")
    assert reply.startswith(HANDOFF_REASONS["two_failed_turns"])
    assert reply.startswith("2回続けて、お尋ねの内容に合うご案内を見つけられませんでした。")
    asked = handoff_reply(city, at(2026, 11, 27, 10, 0), Wait(10, 0, 1), "requested_human")
    assert asked.startswith("担当の職員が")  # they asked for a person: no reason needed
