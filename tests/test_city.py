"""The city profile: office hours with national holidays, and what a handoff promises."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from assistant.conversation.dialogue import HANDOFF_KEPT, handoff_reply
from knowledge.city import CityProfile, japanese_moment
from knowledge.model import KnowledgeError

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def city() -> CityProfile:
    return CityProfile.load()


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=TOKYO)


@pytest.mark.parametrize(
    "moment, open_",
    [
        (at(2026, 11, 27, 10, 0), True),  # Friday morning
        (at(2026, 11, 27, 8, 29), False),  # before opening
        (at(2026, 11, 27, 17, 15), False),  # closing time
        (at(2026, 11, 28, 10, 0), False),  # Saturday
        (at(2026, 11, 23, 10, 0), False),  # 勤労感謝の日 (Monday)
        (at(2026, 5, 6, 10, 0), False),  # 振替休日
        (at(2026, 9, 22, 10, 0), False),  # 国民の休日
        (at(2026, 12, 29, 10, 0), False),  # 年末年始 (a Tuesday)
        (at(2027, 1, 4, 10, 0), True),  # first working day of 2027
    ],
)
def test_office_hours_know_weekends_holidays_and_the_new_year(city, moment, open_):
    assert city.is_open(moment) is open_


def test_the_server_time_zone_does_not_matter(city):
    # 01:00 UTC is 10:00 in Tokyo on a Friday.
    assert city.is_open(dt.datetime(2026, 11, 27, 1, 0, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize(
    "moment, opening",
    [
        (at(2026, 11, 27, 10, 0), at(2026, 11, 27, 10, 0)),
        (at(2026, 11, 27, 7, 0), at(2026, 11, 27, 8, 30)),
        (at(2026, 11, 27, 18, 0), at(2026, 11, 30, 8, 30)),  # Friday night -> Monday
        (at(2026, 11, 21, 12, 0), at(2026, 11, 24, 8, 30)),  # Saturday before 勤労感謝の日
        (at(2026, 12, 28, 18, 0), at(2027, 1, 4, 8, 30)),  # over 年末年始
    ],
)
def test_next_opening(city, moment, opening):
    assert city.next_opening(moment) == opening


def test_a_handoff_outside_office_hours_says_when_a_person_will_answer(city):
    assert "受付時間外" not in handoff_reply(city, at(2026, 11, 27, 10, 0))
    reply = handoff_reply(city, at(2026, 12, 28, 20, 0))
    assert "1月4日（月）8時30分以降" in reply
    assert "受付時間外" in reply and "年末年始" in reply
    assert reply.endswith(HANDOFF_KEPT)  # the resident may close the page and come back


def test_japanese_moment():
    assert japanese_moment(at(2026, 12, 1, 9, 0)) == "12月1日（火）9時"
    assert japanese_moment(at(2026, 12, 1, 8, 30)) == "12月1日（火）8時30分"


def test_a_bad_profile_is_named(tmp_path):
    profile = tmp_path / "city.yaml"
    text = (CityProfile.load.__defaults__[0]).read_text(encoding="utf-8")
    profile.write_text(text.replace("Asia/Tokyo", "Asia/Nowhere"), encoding="utf-8")
    with pytest.raises(KnowledgeError, match="city profile .* is unusable"):
        CityProfile.load(profile)
