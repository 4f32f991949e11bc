"""The city profile: every city-specific detail (name, hours, phone numbers) in one file.

A real city replaces ``knowledge/city.yaml`` (or points ``MADOGUCHI_CITY`` at its own);
entries name only a department, and contacts are looked up here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml

from knowledge.clock import DEFAULT_TIMEZONE, city_now
from knowledge.model import PLACEHOLDER, KnowledgeError

DEFAULT_PROFILE = Path(__file__).with_name("city.yaml")


ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")


def _origin(value: object) -> str:
    """An origin as a browser writes it (scheme and host, maybe a port; no path)."""
    if not isinstance(value, str) or not ORIGIN.fullmatch(value.lower().rstrip("/")):
        raise ValueError(
            f"embed_origins: {value!r} is not an origin such as https://www.city.example.lg.jp"
        )
    return value.lower().rstrip("/")


def _chat_settings(chat: dict) -> dict:
    """The ``chat:`` section: welcome, topics (entry ids) and the reply-time promise."""
    settings = {
        "welcome": str(chat.get("welcome") or ""),
        "topics": tuple(str(t) for t in chat.get("topics") or []),
        "reply_target_minutes": int(chat.get("reply_target_minutes", 30)),
        "minutes_per_conversation": int(chat.get("minutes_per_conversation", 10)),
    }
    if settings["reply_target_minutes"] < 1 or settings["minutes_per_conversation"] < 1:
        raise ValueError("chat: reply_target_minutes and minutes_per_conversation must be >= 1")
    return settings


@dataclass(frozen=True)
class Department:
    name: str
    phone: str
    place: str


@lru_cache(maxsize=8)
def _national_holidays(year: int) -> holidays.HolidayBase:
    """Japan's national holidays of ``year`` (computed once per year per process)."""
    return holidays.country_holidays("JP", years=year)


@dataclass(frozen=True)
class CityProfile:
    name: str
    hours_text: str
    closed_text: str
    open_time: dt.time
    close_time: dt.time
    main_phone: str
    address: str
    departments: dict[str, Department]
    timezone: str = DEFAULT_TIMEZONE
    # Days the offices close besides weekends and national holidays, as "MM-DD".
    closed_dates: frozenset[str] = field(default_factory=frozenset)
    # The city's sites that may show the chat in the widget's frame ("https://host").
    embed_origins: tuple[str, ...] = ()
    # What the empty chat shows: a short welcome, and the entries offered as common
    # topics until residents have asked enough for the most-asked ones to show.
    welcome: str = ""
    topics: tuple[str, ...] = ()
    # The wait the city promises for a first reply from staff during office hours, and
    # how long one staff member takes per waiting conversation (for the estimate).
    reply_target_minutes: int = 30
    minutes_per_conversation: int = 10

    @classmethod
    def load(cls, path: Path = DEFAULT_PROFILE) -> CityProfile:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            hours = data["office_hours"]
            profile = cls(
                name=str(data["name"]),
                hours_text=str(hours["weekdays"]),
                closed_text=str(hours["closed"]),
                open_time=dt.time.fromisoformat(str(hours["open"])),
                close_time=dt.time.fromisoformat(str(hours["close"])),
                main_phone=str(data["main_phone"]),
                address=str(data["address"]),
                departments={
                    name: Department(name, str(d["phone"]), str(d["place"]))
                    for name, d in (data.get("departments") or {}).items()
                },
                timezone=str(data.get("timezone") or DEFAULT_TIMEZONE),
                closed_dates=frozenset(
                    dt.date.fromisoformat(f"2000-{day}").strftime("%m-%d")
                    for day in hours.get("closed_dates") or []
                ),
                embed_origins=tuple(_origin(o) for o in data.get("embed_origins") or []),
                **_chat_settings(data.get("chat") or {}),
            )
            ZoneInfo(profile.timezone)
            return profile
        except (
            OSError,
            yaml.YAMLError,
            KeyError,
            TypeError,
            ValueError,
            ZoneInfoNotFoundError,
        ) as error:
            raise KnowledgeError(f"city profile {path} is unusable: {error!r}") from None

    def render(self, text: str) -> str:
        """Fill in the city placeholders (``{{開庁時間}}`` and the like) of an answer."""
        values = {
            "市名": self.name,
            "開庁時間": self.hours_text,
            "閉庁日": self.closed_text,
            "市役所住所": self.address,
            "代表電話": self.main_phone,
        }
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    def contact_for(self, department: str, contact: str = "") -> str:
        """The entry's own contact if it has one, else its department's from the profile."""
        if contact:
            return contact
        known = self.departments.get(department)
        if known is None:
            return f"{department}（代表電話 {self.main_phone}）" if department else ""
        return f"{known.name}（{known.place}、電話 {known.phone}）"

    @cached_property
    def phones(self) -> tuple[str, ...]:
        """Every phone number of the profile (main and departments'), longest first, so
        a page can make each one a tel: link."""
        numbers = {self.main_phone, *(d.phone for d in self.departments.values())}
        return tuple(sorted((n for n in numbers if n), key=lambda n: (-len(n), n)))

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def now(self) -> dt.datetime:
        """The time at the city hall (not the server's time zone): knowledge.clock."""
        return city_now(self.tz)

    def today(self) -> dt.date:
        """The city hall's calendar day, against which entries' dates are compared."""
        return self.now().date()

    def is_business_day(self, day: dt.date) -> bool:
        """A weekday that is neither a national holiday (振替休日 and 国民の休日 included)
        nor one of the profile's closed dates (年末年始)."""
        return (
            day.weekday() < 5
            and day not in _national_holidays(day.year)
            and day.strftime("%m-%d") not in self.closed_dates
        )

    def is_open(self, moment: dt.datetime) -> bool:
        """Whether staff are at the counter at ``moment`` (naive: city time)."""
        local = moment.astimezone(self.tz) if moment.tzinfo else moment
        return (
            self.is_business_day(local.date()) and self.open_time <= local.time() < self.close_time
        )

    def next_opening(self, moment: dt.datetime) -> dt.datetime:
        """When staff are next at the counter: ``moment`` itself during office hours."""
        local = moment.astimezone(self.tz) if moment.tzinfo else moment
        if self.is_open(local):
            return local
        day = local.date()
        if not (self.is_business_day(day) and local.time() < self.open_time):
            day += dt.timedelta(days=1)
            while not self.is_business_day(day):  # at most a long holiday run
                day += dt.timedelta(days=1)
        return dt.datetime.combine(day, self.open_time, tzinfo=local.tzinfo)


WEEKDAYS = "月火水木金土日"


def japanese_moment(moment: dt.datetime) -> str:
    """「12月1日（火）8時30分」"""
    minutes = f"{moment.minute}分" if moment.minute else ""
    return f"{moment.month}月{moment.day}日（{WEEKDAYS[moment.weekday()]}）{moment.hour}時{minutes}"
