"""Who did something, as staff and editors read it: a user's display name, or a plain
label for the command line and the system (never ``cli:operator`` or ``system``)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

COMMAND_LINE = "管理者（コマンド）"
# Actors that are not accounts: the program itself, imports and schema migrations.
NOT_PEOPLE = {
    "system": "システム（自動処理）",
    "import": "システム（一括取り込み）",
    "migration": "システム（データ移行）",
}


def actor_names(db: sqlite_utils.Database, actors: Iterable[str]) -> dict[str, str]:
    """A readable name for each of ``actors`` (empty ones left out)."""
    wanted = sorted({actor for actor in actors if actor})
    users = [actor for actor in wanted if not actor.startswith("cli:") and actor not in NOT_PEOPLE]
    display = {}
    if users:
        marks = ", ".join("?" for _ in users)
        display = {
            row["name"]: row["display_name"] or row["name"]
            for row in db.query(
                f"SELECT name, display_name FROM users WHERE name IN ({marks})", users
            )
        }
    names = {}
    for actor in wanted:
        if actor.startswith("cli:"):
            names[actor] = COMMAND_LINE
        else:
            names[actor] = NOT_PEOPLE.get(actor) or display.get(actor, actor)
    return names
