"""The learning replay (assistant.retrieval.replay) on a tiny knowledge base, real engine and real
SQLite: half the questions taught as resolved handoffs on a copy, the other half asked
before and after, and the live database left exactly as it was."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant.retrieval.engine import Engine
from assistant.retrieval.replay import replay, split, taught_half
from knowledge.io import import_entries
from knowledge.store import all_revisions, knowledge_revision, open_db
from tests.conftest import STARTER

ENTRIES = ("sodai-gomi", "gomi-bunbetsu", "kotei-shisanzei", "juminzei-payment")
# (id, question, its entry or None): q2, q3, q5 are taught (by the hash of their id), the
# rest asked. q1 and q4 say again in other words what q2 and q3 taught.
QUESTIONS = [
    ("q1", "でかい家具をほかしたいんやけど", "sodai-gomi"),
    ("q2", "でかい家具をほかしたい", "sodai-gomi"),
    ("q3", "押し入れの布団を手放したい", "sodai-gomi"),
    ("q4", "押し入れの古い布団を手放したい", "sodai-gomi"),
    ("q5", "ペットボトルって何ごみ", "gomi-bunbetsu"),  # already a phrasing
    ("q6", "明日の天気を教えて", None),
]


@pytest.fixture
def tiny(settings, tmp_path):
    folder = tmp_path / "entries"
    folder.mkdir()
    for entry_id in ENTRIES:
        shutil.copy(STARTER / f"{entry_id}.yaml", folder)
    db = open_db(settings.database_path)
    import_entries(db, folder, "yaml", publish=True)
    db.close()
    Engine.load(settings).db.close()  # the index, as a live home has it
    return settings


def qrels() -> dict[str, dict[str, int]]:
    return {qid: ({entry: 2} if entry else {}) for qid, _, entry in QUESTIONS}


def test_the_split_depends_on_the_ids_alone():
    queries = [(qid, text) for qid, text, _ in QUESTIONS]
    taught, asked = split(queries, qrels())
    assert [qid for qid, _ in taught] == ["q2", "q3", "q5"]
    assert [qid for qid, _ in asked] == ["q1", "q4", "q6"]
    assert all(taught_half(qid) for qid, _ in taught)
    assert split(list(reversed(queries)), qrels())[0] == list(reversed(taught))


def test_replay_learns_on_a_copy_and_measures_the_other_half(tiny):
    db = open_db(tiny.database_path)
    before_live = (knowledge_revision(db), all_revisions(db))
    queries = [(qid, text) for qid, text, _ in QUESTIONS]
    report = replay(tiny, queries, qrels())
    assert (report.taught, report.suggested, report.accepted, report.refused) == (3, 2, 2, 0)
    assert (report.before.in_scope, report.before.out_of_scope) == (2, 1)
    # What the residents' own words taught: the same questions in other words answered.
    assert report.before.answer_rate < report.after.answer_rate == 1.0
    assert report.after.wrong_answers == 0.0 and report.after.out_of_scope_answered == 0.0
    assert report.after.hit_at_1 == 1.0
    # The live database is as it was: no ticket, no suggestion, no new revision.
    assert (knowledge_revision(db), all_revisions(db)) == before_live
    assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM suggestions").fetchone()[0] == 0
    assert json.loads(json.dumps(report.as_dict()))["after"]["answer_rate"] == 1.0


def test_a_careful_replay_leaves_a_conflicting_wording_open(tiny):
    # q3 is taught with another entry's phrasing: the workflow refuses it when every
    # wording is accepted; the careful editor leaves it open, as the queue shows it.
    queries = [
        ("q2", "でかい家具をほかしたい"),
        ("q3", "ごみの分け方がわかりません"),
        ("q1", "でかい家具"),
    ]
    grades = {"q1": {"sodai-gomi": 2}, "q2": {"sodai-gomi": 2}, "q3": {"sodai-gomi": 2}}
    every = replay(tiny, queries, grades)
    careful = replay(tiny, queries, grades, careful=True)
    assert (every.suggested, every.accepted, every.refused, every.skipped) == (2, 1, 1, 0)
    assert (careful.suggested, careful.accepted, careful.refused, careful.skipped) == (2, 1, 0, 1)
    assert "1 left open for a conflict" in careful.lines()[0]
    assert careful.after == every.after
