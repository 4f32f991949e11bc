"""Actors as staff read them (knowledge.actors), on a real SQLite database."""

from __future__ import annotations

from knowledge.accounts import add_user
from knowledge.actors import actor_names
from knowledge.store import open_db


def test_display_names_and_plain_labels_for_the_command_line_and_the_system(tmp_path):
    db = open_db(tmp_path / "knowledge.db")
    add_user(db, "kimura", "staff", "a long enough password", display_name="木村")
    add_user(db, "sato", "staff", "a long enough password")
    actors = ["kimura", "sato", "cli:operator", "cli:root", "system", "import", "gone", ""]
    assert actor_names(db, actors) == {
        "kimura": "木村",
        "sato": "sato",
        "cli:operator": "管理者（コマンド）",
        "cli:root": "管理者（コマンド）",
        "system": "システム（自動処理）",
        "import": "システム（一括取り込み）",
        "gone": "gone",
    }
    assert actor_names(db, []) == {}
