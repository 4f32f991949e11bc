"""How long a resident handed to a person can expect to wait, during office hours.

From the open tickets nobody has claimed yet and the staff at work (anyone who used a
console in the last ``ON_DUTY_WINDOW``): each staff member takes the city profile's
``minutes_per_conversation`` per waiting conversation. With nobody at a console, the
estimate is the profile's stated target (``reply_target_minutes``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import sqlite_utils

from knowledge.city import CityProfile

ON_DUTY_WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Wait:
    minutes: int
    waiting: int  # conversations ahead of this one
    on_duty: int  # staff at a console now (0: the estimate is the profile's target)


def staff_on_duty(db: sqlite_utils.Database, now: dt.datetime) -> int:
    """Accounts signed in at a console (a browser session, not a script's token) that
    were used within ``ON_DUTY_WINDOW`` of ``now``."""
    since = now - ON_DUTY_WINDOW
    users = set()
    rows = db.query(
        "SELECT s.user, s.created_at, s.last_seen_at, s.expires_at FROM auth_sessions s "
        "JOIN users u ON u.name = s.user WHERE s.kind = 'cookie' AND u.disabled_at IS NULL"
    )
    for row in rows:
        seen = dt.datetime.fromisoformat(row["last_seen_at"] or row["created_at"])
        if seen >= since and dt.datetime.fromisoformat(row["expires_at"]) > now:
            users.add(row["user"])
    return len(users)


def unclaimed_tickets(db: sqlite_utils.Database) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM tickets WHERE status = 'open' AND "
        "(claimed_by IS NULL OR claimed_by = '')"
    ).fetchone()[0]


def expected_wait(db: sqlite_utils.Database, city: CityProfile, now: dt.datetime) -> Wait:
    """The wait for a conversation handed over at ``now`` (aware), before its ticket is
    opened: the unclaimed tickets are the ones ahead of it."""
    waiting = unclaimed_tickets(db)
    on_duty = staff_on_duty(db, now)
    if on_duty == 0:
        return Wait(city.reply_target_minutes, waiting, 0)
    rounds = math.ceil((waiting + 1) / on_duty)
    return Wait(rounds * city.minutes_per_conversation, waiting, on_duty)


def japanese_duration(minutes: int) -> str:
    """A rough duration as a resident reads it: 「5分」「15分」「1時間」「1時間30分」."""
    if minutes <= 5:
        return "5分"
    rounded = math.ceil(minutes / 5) * 5
    hours, rest = divmod(rounded, 60)
    if not hours:
        return f"{rest}分"
    return f"{hours}時間{rest}分" if rest else f"{hours}時間"
