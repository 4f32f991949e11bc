"""The chiVe word-vector encoder (assistant.retrieval.encoder) as built by `make setup`."""

from __future__ import annotations

import json
import shutil

import numpy as np

from assistant.retrieval.encoder import (
    EMBEDDING_CONFIG,
    LEGACY_TOKENIZER_CLASS,
    SudachiWordTokenizer,
    load_encoder,
)
from tests.conftest import built_encoder

QUESTIONS = ["粗大ごみの出し方", "国民健康保険料を口座振替にしたい"]


def test_a_directory_built_before_the_package_move_still_loads(tmp_path):
    built = built_encoder().parent / "word-vectors"
    copy = tmp_path / "word-vectors"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    (copy / "model.safetensors").symlink_to(built / "model.safetensors")
    config = copy / EMBEDDING_CONFIG
    old = json.loads(config.read_text(encoding="utf-8"))
    config.write_text(json.dumps({**old, "tokenizer_class": LEGACY_TOKENIZER_CLASS}), "utf-8")

    legacy = load_encoder(copy)
    renamed = json.loads(config.read_text(encoding="utf-8"))
    assert renamed["tokenizer_class"] == "assistant.retrieval.encoder.SudachiWordTokenizer"
    assert {k: v for k, v in renamed.items() if k != "tokenizer_class"} == {
        k: v for k, v in old.items() if k != "tokenizer_class"
    }
    assert isinstance(legacy[0].tokenizer, SudachiWordTokenizer)
    current = load_encoder(built)
    assert np.array_equal(legacy.encode(QUESTIONS), current.encode(QUESTIONS))


def test_a_process_loads_a_model_once_until_its_files_or_settings_change(tmp_path, monkeypatch):
    from assistant.retrieval.vectors import Encoder, shared_model

    built = built_encoder().parent / "word-vectors"
    copy = tmp_path / "word-vectors"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    (copy / "model.safetensors").symlink_to(built / "model.safetensors")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    first = Encoder(copy, cache=False)
    second = Encoder(copy, cache=False)
    assert second.model is first.model  # two engines, one loaded model
    assert shared_model(copy) is first.model

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a session is made for its thread count
    threads = shared_model(copy)
    assert threads is not first.model

    config = copy / EMBEDDING_CONFIG  # a file of the directory changed: loaded afresh
    config.write_text(config.read_text(encoding="utf-8") + "\n", "utf-8")
    changed = Encoder(copy, cache=False)
    assert changed.model is not threads and changed.model is not first.model
    assert np.array_equal(changed.model.encode(QUESTIONS), first.model.encode(QUESTIONS))
