"""The persisted index: staleness detection, corruption, atomic files."""

from __future__ import annotations

import json

import pytest

from assistant.engine import Engine
from assistant.errors import IndexUnavailable
from assistant.index import INDEX_FILE, DenseIndex
from knowledge.io import import_entries
from knowledge.store import knowledge_revision, open_db
from tests.conftest import STARTER_COUNT


def test_load_builds_a_missing_index_and_saves_it(starter_settings):
    engine = Engine.load(starter_settings)
    saved = DenseIndex.load(starter_settings.index_dir)
    assert saved.knowledge_revision == knowledge_revision(engine.db)
    assert saved.entry_count() == engine.dense.entry_count() == STARTER_COUNT


def test_a_corrupt_index_is_rebuilt_at_start(starter_settings):
    Engine.load(starter_settings)
    path = starter_settings.index_dir / INDEX_FILE
    path.write_bytes(b"\x00garbage")
    with pytest.raises(IndexUnavailable, match="unreadable"):
        DenseIndex.load(starter_settings.index_dir)
    engine = Engine.load(starter_settings)
    assert engine.search("粗大ごみを出したい").best.entry_id == "sodai-gomi"
    assert DenseIndex.load(starter_settings.index_dir).entry_count() == STARTER_COUNT


def test_a_stale_index_is_rebuilt_when_the_knowledge_changed(starter_settings, tmp_path):
    Engine.load(starter_settings)
    db = open_db(starter_settings.database_path)
    path = tmp_path / "new.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "dog-registration",
                "title": "犬の登録",
                "questions": ["犬を飼い始めた"],
                "answer": "登録してください。",
            },
            ensure_ascii=False,
        )
        + "\n",
        "utf-8",
    )
    import_entries(db, path, "jsonl", publish=True)
    with pytest.raises(IndexUnavailable, match="knowledge revision 1"):
        Engine.load(starter_settings, rebuild_if_stale=False)
    engine = Engine.load(starter_settings)
    assert engine.dense.entry_count() == STARTER_COUNT + 1
    assert engine.search("犬を飼い始めた").best.entry_id == "dog-registration"


def test_missing_index_without_rebuild_says_how_to_build_it(starter_settings):
    with pytest.raises(IndexUnavailable, match="madoguchi index build"):
        Engine.load(starter_settings, rebuild_if_stale=False)


def test_no_temporary_files_are_left_behind(starter_settings):
    Engine.load(starter_settings, force_rebuild=True)
    assert [p.name for p in starter_settings.index_dir.iterdir()] == [INDEX_FILE]


def test_add_replace_remove_one_revision(tmp_path):
    import numpy as np

    index = DenseIndex.empty(3, 1, "fp")
    one = np.array([[1, 0, 0], [0, 1, 0]], dtype="float32")
    index.add("a@1#x", ["title", "question"], one)
    index.add("b@1#y", ["title"], np.array([[0, 0, 1]], dtype="float32"))
    index.add("a@1#x", ["title"], np.array([[0, 0, 1]], dtype="float32"))  # replace
    assert index.keys() == {"a@1#x", "b@1#y"}
    assert index.faiss_index.ntotal == 2
    index.remove("b@1#y")
    assert index.keys() == {"a@1#x"}
    [(row, score)] = index.search(np.array([0, 0, 1], dtype="float32"), limit=5)
    assert (row.key, round(score, 4)) == ("a@1#x", 1.0)
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    assert loaded.keys() == {"a@1#x"}
    loaded.add("c@1#z", ["title"], np.array([[1, 0, 0]], dtype="float32"))
    assert loaded.faiss_index.ntotal == 2 and len(loaded.rows) == 2
