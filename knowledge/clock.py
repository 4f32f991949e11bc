"""The one clock: the city's.

Which revision of an entry is in force, whether the counter is open, what "today" an
editor's page marks as 適用中 or 予定: all of it is the city hall's calendar, in the city
profile's time zone (``timezone:`` in knowledge/city.yaml), never the server's. A server
on UTC would otherwise switch ``valid_from: 2027-04-01`` at 09:00 in Japan, not at
midnight.

The clock is the system clock (``time.time()``), so a test fixes it for a process with
libfaketime (``TZ=UTC faketime -f '@2027-03-31 15:30:00' madoguchi search ...``); there
is no switch to set it from inside the program.
"""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Tokyo"


def _zone(tz: dt.tzinfo | str) -> dt.tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def city_now(tz: dt.tzinfo | str = DEFAULT_TIMEZONE) -> dt.datetime:
    """The time at the city hall (aware, in ``tz``)."""
    return dt.datetime.fromtimestamp(time.time(), _zone(tz))


def city_today(tz: dt.tzinfo | str = DEFAULT_TIMEZONE) -> dt.date:
    """The city hall's calendar day: what ``valid_from``/``valid_until`` are compared to."""
    return city_now(tz).date()
