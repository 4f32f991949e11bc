"""The persisted index: staleness detection, corruption, atomic files."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant.retrieval.engine import WORD_VECTORS_DIR, Engine
from assistant.retrieval.errors import IndexUnavailable
from assistant.retrieval.index import INDEX_FILE, DenseIndex
from assistant.retrieval.lexical import CHARS_FILE, LEXICAL_FILE, LexicalIndex
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
    shutil.rmtree(starter_settings.index_dir)
    with pytest.raises(IndexUnavailable, match="madoguchi index build"):
        Engine.load(starter_settings, rebuild_if_stale=False)


def test_no_temporary_files_are_left_behind(starter_settings):
    Engine.load(starter_settings, force_rebuild=True)
    names = sorted(p.name for p in starter_settings.index_dir.iterdir())
    assert names == sorted([INDEX_FILE, LEXICAL_FILE, CHARS_FILE, WORD_VECTORS_DIR])
    words = starter_settings.index_dir / WORD_VECTORS_DIR
    assert [p.name for p in words.iterdir()] == [INDEX_FILE]


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


def unit_vectors(count: int, dimension: int, seed: int):
    import numpy as np

    vectors = np.random.default_rng(seed).standard_normal((count, dimension)).astype("float32")
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_approximate_index_adds_replaces_removes_and_persists(tmp_path):
    vectors = unit_vectors(3000, 16, seed=7)
    index = DenseIndex.empty(16, 1, "fp")
    for i in range(0, 3000, 3):
        index.add(f"e{i}@1#d", ["title", "question", "answer"], vectors[i : i + 3])
    index.to_approximate(nprobe=8)
    assert index.approximate and index.faiss_index.nlist == int(4 * 3000**0.5)
    [(row, score), *_] = index.search(vectors[30], limit=5)
    assert (row.key, round(score, 4)) == ("e30@1#d", 1.0)

    index.add("e30@1#d", ["title"], vectors[2999:3000])  # replace: one vector now
    index.remove("e0@1#d")
    index.add("new@1#n", ["title"], -vectors[5:6])
    assert index.faiss_index.ntotal == 3000 - 3 - 2 + 1 == len(index.rows)
    assert "e0@1#d" not in index.keys()
    found = [row.key for row, _ in index.search(-vectors[5], limit=3)]
    assert found[0] == "new@1#n"

    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    assert loaded.approximate and loaded.faiss_index.nprobe == 8
    assert loaded.search(vectors[100], limit=10) == index.search(vectors[100], limit=10)


def test_the_engine_switches_to_the_approximate_index_past_the_configured_size(
    starter_settings, shared_engine
):
    from tests.conftest import make_settings

    settings = make_settings(
        starter_settings.home, MADOGUCHI_APPROXIMATE_FROM="100", MADOGUCHI_NPROBE="4096"
    )
    engine = Engine.load(settings)
    assert engine.dense.approximate and not shared_engine.dense.approximate
    assert DenseIndex.load(settings.index_dir).approximate
    # Probing every list, the approximate index ranks exactly like the exact one.
    for question in [
        "粗大ごみを出したい",
        "国民健康保険料はコンビニで払えますか",
        "税金を払いたい",
    ]:
        assert engine.search(question) == shared_engine.search(question)


def test_a_restart_reuses_the_saved_lexical_index(starter_settings, monkeypatch):
    first = Engine.load(starter_settings)
    expected = first.search("国民健康保険料はコンビニで払えますか")

    def analyse_again(*args, **kwargs):
        raise AssertionError("a restart with a current index must not analyse entries again")

    monkeypatch.setattr(LexicalIndex, "add", analyse_again)
    again = Engine.load(starter_settings)
    assert again.lexical.keys() == first.lexical.keys()
    assert again.search("国民健康保険料はコンビニで払えますか") == expected


@pytest.mark.parametrize("analyzer, name", [("words", LEXICAL_FILE), ("chars", CHARS_FILE)])
def test_a_damaged_lexical_file_is_rebuilt_and_rewritten(starter_settings, analyzer, name):
    first = Engine.load(starter_settings)
    expected = first.search("粗大ごみを出したい")
    path = starter_settings.index_dir / name
    path.write_bytes(b"not gzip")
    assert LexicalIndex.load(starter_settings.index_dir, analyzer) is None
    again = Engine.load(starter_settings)
    assert again.search("粗大ごみを出したい") == expected
    reloaded, revision = LexicalIndex.load(starter_settings.index_dir, analyzer)
    assert reloaded.keys() == again.lexical.keys() and revision == again.dense.knowledge_revision
    assert reloaded.analyzer == analyzer


def test_an_index_from_another_encoder_is_refused_or_rebuilt(starter_settings, tmp_path):
    import shutil

    from tests.conftest import make_settings

    Engine.load(starter_settings)
    other = tmp_path / "other-encoder"
    shutil.copytree(starter_settings.encoder_path, other)
    (other / "README.md").write_text("a retrained copy\n", encoding="utf-8")
    settings = make_settings(starter_settings.home, MADOGUCHI_ENCODER=str(other))
    with pytest.raises(IndexUnavailable, match="built with encoder .* the configured one is"):
        Engine.load(settings, rebuild_if_stale=False)
    before = DenseIndex.load(settings.index_dir).encoder_fingerprint
    engine = Engine.load(settings)
    assert DenseIndex.load(settings.index_dir).encoder_fingerprint not in (before, "")
    assert engine.search("粗大ごみを出したい").best.entry_id == "sodai-gomi"
