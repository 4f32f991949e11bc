"""A sentence encoder as the engine uses it: its prompts, its fingerprint, and a vector
cache on disk, so that a text is encoded once per encoder, whichever process, index or
knowledge home asks for it again.

The transformer is the slow part of indexing (1,800 FAQ answers take minutes on two
cores); with the cache, a rebuild, a restore, an import of a file that changed in three
entries or a test's fresh knowledge home encodes only what it has not seen. The cache is
one SQLite file per encoder fingerprint, next to the encoder (``vector-cache/`` in the
encoder's parent directory), keyed by the role and the SHA-256 of the text; vectors are
stored as the encoder returned them, so a cached vector is byte-identical to a fresh
one computed the same way.

A process loads each model once (``shared_model``): every engine it makes over the same
unchanged directory (the API's after a publish, a restore, a test's fresh home) uses the
same loaded model instead of reading it again (about 2 s for e5-small and the word
vectors).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from assistant.retrieval.encoder import encoder_fingerprint, load_encoder
from assistant.retrieval.onnx_encoder import OnnxSentenceEncoder

log = logging.getLogger(__name__)

# A role is how a text is used: a question ("query") or a passage of an answer. Models
# with e5's prompts get "query: " / "passage: "; models without prompts encode both alike.
ROLES = ("query", "passage")
FINGERPRINT_FILE = ".madoguchi-fingerprint.json"


def _stamp(root: Path) -> list[list]:
    """Each file of a model directory by its name, size and modification time."""
    return [
        [str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != FINGERPRINT_FILE
    ]


def cached_fingerprint(path: Path) -> str:
    """encoder_fingerprint, remembered beside the files it digests (by their sizes and
    modification times), so that loading a 470 MB model does not hash it every time."""
    root = Path(path)
    stamp = _stamp(root)
    memo = root / FINGERPRINT_FILE
    try:
        saved = json.loads(memo.read_text())
        if saved.get("files") == stamp:
            return saved["fingerprint"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    fingerprint = encoder_fingerprint(root, exclude=FINGERPRINT_FILE)
    try:
        memo.write_text(json.dumps({"fingerprint": fingerprint, "files": stamp}))
    except OSError:
        pass  # a read-only model directory: hashed at every start, still correct
    return fingerprint


# Models this process has loaded, newest last: a few, so that a process making models in
# many directories (a test run, an encoder build) does not keep them all.
_MODELS: OrderedDict[tuple, Any] = OrderedDict()
_MODELS_KEPT = 4
_MODELS_LOCK = threading.Lock()


def _model_key(root: Path) -> tuple:
    # The runtime and the thread count are chosen from the environment when a model loads.
    settings = tuple(
        os.environ.get(name) for name in ("MADOGUCHI_ENCODER_RUNTIME", "OMP_NUM_THREADS")
    )
    return (str(root.resolve()), json.dumps(_stamp(root)), settings)


def shared_model(path: Path) -> Any:
    """``load_encoder(path)``, loaded once per process while the directory's files stay as
    they were (a changed file, runtime or thread setting loads it again). A loaded model
    only encodes, so engines and threads can share it."""
    root = Path(path)
    with _MODELS_LOCK:
        try:
            key = _model_key(root)
        except OSError:
            key = None  # a path that cannot be listed: load_encoder says what is wrong
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        model = load_encoder(root)
        _MODELS[_model_key(root)] = model  # after loading: an old directory is updated once
        while len(_MODELS) > _MODELS_KEPT:
            _MODELS.popitem(last=False)
        return model


class VectorCache:
    """role + text -> vector, in one SQLite file shared by every process."""

    def __init__(self, path: Path, dimension: int):
        self.path = Path(path)
        self.dimension = dimension
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")
        # In use: prune_vector_caches keeps a file opened within STALE_CACHE_DAYS.
        with contextlib.suppress(OSError):
            self.path.touch()

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @staticmethod
    def key(role: str, text: str) -> str:
        return hashlib.sha256(f"{role}\x00{text}".encode("utf-8", "replace")).hexdigest()

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        db = self._connect()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk
            ):
                vector = np.frombuffer(blob, dtype="float32")
                if vector.shape == (self.dimension,):
                    found[key] = vector
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        db = self._connect()
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                [(k, np.asarray(v, dtype="float32").tobytes()) for k, v in items.items()],
            )


# A cache file of an encoder that is not configured is removed by `madoguchi index build`
# once no process has opened it for this long (another home may still use that encoder).
STALE_CACHE_DAYS = 30


def prune_vector_caches(in_use: list[Path], *, now: float | None = None) -> list[Path]:
    """Remove, from the directories of the cache files ``in_use`` (the configured
    encoders'), the other encoders' files that no process has opened for
    STALE_CACHE_DAYS (a rebuilt or replaced model leaves its old fingerprint's file
    behind); return what was removed. Only a cache: a file removed by mistake costs one
    encoding of each text again."""
    keep = {Path(path) for path in in_use}
    cutoff = (time.time() if now is None else now) - STALE_CACHE_DAYS * 86400
    removed: list[Path] = []
    for directory in sorted({path.parent for path in keep}):
        for path in sorted(directory.glob("*.sqlite")):
            if path in keep or _last_used(path) > cutoff:
                continue
            try:
                for stale in (
                    path.with_name(path.name + "-wal"),
                    path.with_name(path.name + "-shm"),
                ):
                    stale.unlink(missing_ok=True)
                path.unlink()
            except OSError as error:
                log.warning("stale vector cache %s not removed: %s", path, error)
                continue
            removed.append(path)
    return removed


def _last_used(path: Path) -> float:
    """When a process last opened the cache (VectorCache touches its file on opening)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


class Encoder:
    """A loaded sentence-transformers model with its prompts and cache."""

    def __init__(self, path: Path, *, cache: bool = True):
        self.path = Path(path)
        self.model = shared_model(self.path)
        self.fingerprint = cached_fingerprint(self.path)
        if isinstance(self.model, OnnxSentenceEncoder):
            # Its vectors agree with torch's to float precision, not to the byte: they are
            # cached and indexed apart.
            self.fingerprint = hashlib.sha256(f"{self.fingerprint}:onnx".encode()).hexdigest()[:16]
        self.dimension = self.model.get_embedding_dimension()
        prompts = getattr(self.model, "prompts", None) or {}
        self.prompts = {role: role for role in ROLES if prompts.get(role)}
        self.cache: VectorCache | None = None
        if cache:
            where = self.path.parent / "vector-cache" / f"{self.fingerprint}.sqlite"
            try:
                self.cache = VectorCache(where, self.dimension)
            except (OSError, sqlite3.Error) as error:
                log.warning("no vector cache at %s (%s): every text is encoded", where, error)

    def _encode(self, texts: list[str], role: str, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        vectors = self.model.encode(
            texts,
            prompt_name=self.prompts.get(role),
            normalize_embeddings=True,
            show_progress_bar=False,
            batch_size=batch_size,
        )
        return np.asarray(vectors, dtype="float32")

    def query(self, text: str) -> np.ndarray:
        """One resident question, encoded now (never cached: questions are many and
        personal; encoding one alone makes it independent of any batch)."""
        return self._encode([text], "query", batch_size=1)[0]

    def encode(self, texts: list[str], role: str) -> np.ndarray:
        """Vectors for knowledge texts, from the cache where it has them."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        if self.cache is None:
            return self._encode(list(texts), role)
        keys = [VectorCache.key(role, t) for t in texts]
        found = self.cache.get(list(dict.fromkeys(keys)))
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        if missing:
            fresh = self._encode(missing, role)
            new = {VectorCache.key(role, t): v for t, v in zip(missing, fresh, strict=True)}
            try:
                self.cache.put(new)
            except sqlite3.Error as error:
                log.warning("vector cache %s not written: %s", self.cache.path, error)
            found.update(new)
        return np.stack([found[k] for k in keys]).astype("float32", copy=False)
