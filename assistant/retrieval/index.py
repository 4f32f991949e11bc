"""The dense index: one vector per phrasing (title, questions, answer) in FAISS.

Exact inner-product search (``IndexIDMap2`` over ``IndexFlatIP``) by default; past a
configured number of vectors the index is converted to an inverted-file index
(``IndexIVFFlat``, inner product, ids stored in its lists), which probes ``nprobe`` of
about 4·√n lists per query. Both keep our row ids, so single revisions can be added,
replaced and removed in either form.

Persisted as one file, ``index.bin`` (a JSON header, then FAISS's own serialization),
written to a temporary name and renamed, so a reader never sees half an index. The
header records the knowledge revision and encoder fingerprint it was built from; the
engine rebuilds when either disagrees with what is current.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from assistant.retrieval.errors import IndexUnavailable

INDEX_FILE = "index.bin"
FORMAT_VERSION = 4  # 3: answers also by paragraph; 4: a whole answer only if not


@dataclass(frozen=True)
class Row:
    key: str  # the revision's key: "entry_id@revision#digest" (see Engine.key)
    kind: str  # "title" | "question" | "answer" | "passage" (a paragraph of the answer)


EXACT_TYPES = (faiss.IndexIDMap2,)
APPROXIMATE_TYPES = (faiss.IndexIVFFlat,)


@dataclass
class DenseIndex:
    faiss_index: faiss.Index  # IndexIDMap2(IndexFlatIP) or IndexIVFFlat
    rows: dict[int, Row]
    knowledge_revision: int
    encoder_fingerprint: str
    # key -> its row ids, and the next free row id: adding and removing one revision
    # must not scan every row (that made a 100,000-entry build quadratic).
    _row_ids: dict[str, list[int]] = field(init=False, repr=False)
    _next_id: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._row_ids = {}
        for row_id, row in self.rows.items():
            self._row_ids.setdefault(row.key, []).append(row_id)
        self._next_id = max(self.rows, default=-1) + 1

    @classmethod
    def empty(cls, dimension: int, knowledge_revision: int, fingerprint: str) -> DenseIndex:
        return cls(
            faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), {}, knowledge_revision, fingerprint
        )

    @property
    def dimension(self) -> int:
        return self.faiss_index.d

    @property
    def approximate(self) -> bool:
        return isinstance(self.faiss_index, APPROXIMATE_TYPES)

    def set_nprobe(self, nprobe: int) -> None:
        if self.approximate:
            self.faiss_index.nprobe = min(nprobe, self.faiss_index.nlist)

    def to_approximate(self, nprobe: int) -> None:
        """Re-index every vector in an IVF index trained on them (deterministic: FAISS's
        k-means has a fixed seed, and the training sample is every k-th vector)."""
        if self.approximate or self.faiss_index.ntotal == 0:
            return
        exact = self.faiss_index
        count = exact.ntotal
        vectors = exact.index.reconstruct_n(0, count)
        ids = faiss.vector_to_array(exact.id_map).astype("int64")
        nlist = max(16, int(4 * math.sqrt(count)))
        quantizer = faiss.IndexFlatIP(self.dimension)
        ivf = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(np.ascontiguousarray(vectors[:: max(1, count // (nlist * 50))]))
        ivf.add_with_ids(vectors, ids)
        self.faiss_index = ivf
        self.set_nprobe(nprobe)

    def keys(self) -> set[str]:
        return set(self._row_ids)

    def entry_count(self) -> int:
        """Distinct entries indexed (an entry may have a current and a scheduled revision)."""
        return len({row.key.split("@", 1)[0] for row in self.rows.values()})

    def add(self, key: str, kinds: list[str], vectors: np.ndarray) -> None:
        """Replace the vectors stored under ``key`` with these."""
        self.remove(key)
        ids = np.arange(self._next_id, self._next_id + len(kinds), dtype="int64")
        self._next_id += len(kinds)
        self.faiss_index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)
        for row_id, kind in zip(ids.tolist(), kinds, strict=True):
            self.rows[row_id] = Row(key, kind)
        self._row_ids[key] = ids.tolist()

    def remove(self, key: str) -> None:
        ids = self._row_ids.pop(key, None)
        if ids:
            self.faiss_index.remove_ids(np.array(ids, dtype="int64"))
            for row_id in ids:
                del self.rows[row_id]

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[Row, float]]:
        if self.faiss_index.ntotal == 0:
            return []
        limit = min(limit, self.faiss_index.ntotal)
        scores, ids = self.faiss_index.search(
            np.ascontiguousarray(vector.reshape(1, -1), dtype="float32"), limit
        )
        return [
            (self.rows[int(row_id)], float(score))
            for score, row_id in zip(scores[0], ids[0], strict=True)
            if row_id >= 0
        ]

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        header = json.dumps(
            {
                "format": FORMAT_VERSION,
                "knowledge_revision": self.knowledge_revision,
                "encoder_fingerprint": self.encoder_fingerprint,
                "rows": {str(k): [v.key, v.kind] for k, v in sorted(self.rows.items())},
            },
            ensure_ascii=False,
        ).encode()
        body = faiss.serialize_index(self.faiss_index).tobytes()
        target = directory / INDEX_FILE
        staging = directory / f".{INDEX_FILE}.{os.getpid()}.tmp"
        with open(staging, "wb") as out:
            out.write(struct.pack("<Q", len(header)))
            out.write(header)
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, target)
        return target

    @classmethod
    def load(cls, directory: Path) -> DenseIndex:
        path = directory / INDEX_FILE
        if not path.is_file():
            raise IndexUnavailable(f"no index at {path}: run `madoguchi index build`")
        try:
            data = path.read_bytes()
            (length,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8 : 8 + length].decode())
            if header.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {header.get('format')!r}, expected {FORMAT_VERSION}")
            body = np.frombuffer(data[8 + length :], dtype="uint8")
            faiss_index = faiss.deserialize_index(body)
            if not isinstance(faiss_index, EXACT_TYPES + APPROXIMATE_TYPES):
                raise ValueError(f"holds a {type(faiss_index).__name__}, not an id-mapped index")
            rows = {int(k): Row(v[0], v[1]) for k, v in header["rows"].items()}
            if faiss_index.ntotal != len(rows):
                raise ValueError(f"{faiss_index.ntotal} vectors but {len(rows)} rows")
        except Exception as error:  # any damage to the file means the same: rebuild it
            raise IndexUnavailable(f"index at {path} is unreadable ({error}); rebuild it") from None
        return cls(
            faiss_index,
            rows,
            int(header["knowledge_revision"]),
            str(header["encoder_fingerprint"]),
        )
