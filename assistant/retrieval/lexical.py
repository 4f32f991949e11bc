"""BM25 over Sudachi normalized content words, one document per indexed revision; and
the same over two-character pieces (``char_grams``), a second index that does not
depend on where Sudachi puts word boundaries.

The dense encoder knows that 「支払い」 and 「納付」 are close; the lexical side knows
that a question sharing no word with any entry (「明日の天気は？」) is out of scope.
Postings (term -> documents) keep a search proportional to the documents that share a
word with the query, not to the size of the knowledge base; each term's postings are
also kept as NumPy arrays (rebuilt when that term's documents change), so scoring a
common word over 100,000 entries is a few vector operations, not a Python loop.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import Counter
from collections.abc import Collection, Iterable
from importlib.metadata import version
from pathlib import Path

import numpy as np

from assistant.retrieval.text import ANALYSIS_VERSION, char_grams, content_terms

LEXICAL_FILE = "lexical.json.gz"
CHARS_FILE = "chars.json.gz"
FORMAT_VERSION = 2  # 2: answers analysed paragraph by paragraph
CHAR_GRAMS_VERSION = 1  # bump when char_grams() changes


def analysis_id(analyzer: str = "words") -> str:
    """What the terms depend on: our analysis rules and Sudachi's dictionary."""
    if analyzer == "chars":
        return f"char-grams-{CHAR_GRAMS_VERSION}"
    return f"analysis-{ANALYSIS_VERSION}/sudachidict-core-{version('SudachiDict-core')}"


ANALYZERS = {"words": content_terms, "chars": char_grams}
FILES = {"words": LEXICAL_FILE, "chars": CHARS_FILE}


K1 = 1.2
B = 0.75
BODY_DISCOUNT = 0.6


class LexicalIndex:
    def __init__(self, analyzer: str = "words") -> None:
        self.analyzer = analyzer
        self.analyze = ANALYZERS[analyzer]
        self._postings: dict[str, dict[str, int]] = {}  # term -> {doc key: frequency}
        self._docs: dict[str, frozenset[str]] = {}  # doc key -> its terms
        # Words of the title and phrasings alone: what the entry is about, as opposed
        # to everything its answer happens to mention.
        self._heads: dict[str, frozenset[str]] = {}
        self._lengths: dict[str, int] = {}
        self._total_length = 0
        # Each document's slot in the score arrays; freed slots are reused.
        self._slots: dict[str, int] = {}
        self._slot_keys: list[str | None] = []
        self._free: list[int] = []
        self._slot_lengths = np.zeros(0, dtype="float64")
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> slots, tf

    def __len__(self) -> int:
        return len(self._docs)

    def keys(self) -> set[str]:
        return set(self._docs)

    def terms(self, key: str) -> frozenset[str]:
        """The document's terms (none for an unknown key)."""
        return self._docs.get(key, frozenset())

    def add(self, key: str, head: Iterable[str], body: Iterable[str]) -> None:
        """Index (or re-index) one document: ``head`` its title and phrasings, ``body`` the rest."""
        terms: Counter[str] = Counter()
        for text in head:
            terms.update(self.analyze(text))
        head_terms = frozenset(terms)
        for text in body:
            terms.update(self.analyze(text))
        self._insert(key, head_terms, terms)

    def _insert(self, key: str, head: frozenset[str], terms: Counter[str] | dict[str, int]) -> None:
        self.remove(key)
        self._heads[key] = head
        for term, frequency in terms.items():
            self._postings.setdefault(term, {})[key] = frequency
            self._arrays.pop(term, None)
        self._docs[key] = frozenset(terms)
        self._lengths[key] = sum(terms.values())
        self._total_length += self._lengths[key]
        slot = self._free.pop() if self._free else len(self._slot_keys)
        if slot == len(self._slot_keys):
            self._slot_keys.append(key)
            if slot >= len(self._slot_lengths):
                grown = np.zeros(max(64, 2 * len(self._slot_lengths)), dtype="float64")
                grown[: len(self._slot_lengths)] = self._slot_lengths
                self._slot_lengths = grown
        else:
            self._slot_keys[slot] = key
        self._slots[key] = slot
        self._slot_lengths[slot] = self._lengths[key]

    def remove(self, key: str) -> None:
        terms = self._docs.pop(key, None)
        if terms is None:
            return
        for term in terms:
            docs = self._postings[term]
            del docs[key]
            self._arrays.pop(term, None)
            if not docs:
                del self._postings[term]
        del self._heads[key]
        self._total_length -= self._lengths.pop(key)
        slot = self._slots.pop(key)
        self._slot_keys[slot] = None
        self._slot_lengths[slot] = 0.0
        self._free.append(slot)

    def save(self, directory: Path, knowledge_revision: int) -> Path:
        """Write every document's terms, so a restart need not analyse every entry again
        (at 100,000 entries that takes minutes). Written to a temporary name, renamed."""
        directory.mkdir(parents=True, exist_ok=True)
        docs = {
            key: [sorted(self._heads[key]), {t: self._postings[t][key] for t in sorted(terms)}]
            for key, terms in sorted(self._docs.items())
        }
        payload = {
            "format": FORMAT_VERSION,
            "analysis": analysis_id(self.analyzer),
            "knowledge_revision": knowledge_revision,
            "docs": docs,
        }
        target = directory / FILES[self.analyzer]
        staging = directory / f".{target.name}.{os.getpid()}.tmp"
        with gzip.open(staging, "wt", encoding="utf-8", compresslevel=1) as out:
            json.dump(payload, out, ensure_ascii=False, separators=(",", ":"))
        with open(staging, "rb") as written:
            os.fsync(written.fileno())
        os.replace(staging, target)
        return target

    @classmethod
    def load(cls, directory: Path, analyzer: str = "words") -> tuple[LexicalIndex, int] | None:
        """The saved index and its knowledge revision; None if missing, unreadable or
        made with another analysis (the caller then analyses the entries again)."""
        try:
            with gzip.open(directory / FILES[analyzer], "rt", encoding="utf-8") as source:
                payload = json.load(source)
            if payload.get("format") != FORMAT_VERSION or payload.get("analysis") != analysis_id(
                analyzer
            ):
                return None
            index = cls(analyzer)
            for key, (head, terms) in payload["docs"].items():
                index._insert(key, frozenset(head), terms)
            return index, int(payload["knowledge_revision"])
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            return None

    def idf(self, term: str) -> float:
        count = len(self._docs)
        df = len(self._postings.get(term, ()))
        return math.log(1.0 + (count - df + 0.5) / (df + 0.5))

    def _postings_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self._arrays.get(term)
        if cached is None:
            docs = self._postings[term]
            slots = np.fromiter((self._slots[k] for k in docs), dtype="int64", count=len(docs))
            frequencies = np.fromiter(docs.values(), dtype="float64", count=len(docs))
            cached = self._arrays[term] = (slots, frequencies)
        return cached

    def _score_array(self, query_terms: Iterable[str]) -> np.ndarray | None:
        """BM25 of every slot (0 where no query word occurs), or None if none occurs."""
        terms = sorted(t for t in set(query_terms) if t in self._postings)
        if not terms or not self._docs:
            return None
        average = self._total_length / len(self._docs)
        scores = np.zeros(len(self._slot_keys), dtype="float64")
        for term in terms:  # sorted: the same additions in the same order, every process
            slots, frequencies = self._postings_arrays(term)
            norm = K1 * (1 - B + B * self._slot_lengths[slots] / average)
            scores[slots] += self.idf(term) * (frequencies * (K1 + 1) / (frequencies + norm))
        return scores

    def hits(self, query_terms: list[str], allowed: np.ndarray | None = None) -> Hits:
        """BM25 of every document (only where the ``mask`` ``allowed`` is True), to take
        the best from (``Hits.top``) and to look up others' scores in (``Hits.relative``)."""
        scores = self._score_array(query_terms)
        if scores is not None and allowed is not None:
            scores[~allowed[: len(scores)]] = 0.0
        return Hits(self, scores)

    def scores(self, query_terms: list[str]) -> dict[str, float]:
        """BM25 score of every document sharing at least one term with the query."""
        scores = self._score_array(query_terms)
        if scores is None:
            return {}
        return {self._slot_keys[int(i)]: float(scores[i]) for i in np.flatnonzero(scores > 0)}

    def mask(self, keys: Collection[str]) -> np.ndarray:
        """A filter for ``top``: True at the slots of ``keys``. Valid until the next
        ``add`` or ``remove``."""
        allowed = np.zeros(len(self._slot_keys), dtype=bool)
        allowed[[self._slots[k] for k in keys if k in self._slots]] = True
        return allowed

    def query_weights(self, query_terms: list[str]) -> dict[str, float]:
        """IDF weight of each query word; words never seen weigh as much as the rarest."""
        top = math.log(1.0 + (len(self._docs) + 0.5) / 0.5)
        return {t: (self.idf(t) if t in self._postings else top) for t in set(query_terms)}

    def coverage(self, weights: dict[str, float], key: str) -> float:
        """Share of the query's IDF mass (``query_weights``) found in the document:
        1.0 when every word matches.

        Words found only in the answer count for less (BODY_DISCOUNT): an answer that
        mentions パスポート as an ID document is not about passports.
        """
        terms = self._docs.get(key)
        total = sum(weights.values())
        if not terms or not total:
            return 0.0
        head = self._heads[key]
        in_head = in_all = 0.0
        for term, weight in weights.items():
            if term in terms:
                in_all += weight
                if term in head:
                    in_head += weight
        return max(in_head, BODY_DISCOUNT * in_all) / total


class Hits:
    """One query's BM25 scores over a ``LexicalIndex`` (valid until it changes)."""

    def __init__(self, index: LexicalIndex, scores: np.ndarray | None):
        self.index = index
        self.scores = scores
        self.best = float(scores.max()) if scores is not None and len(scores) else 0.0

    def top(self, limit: int) -> list[str]:
        """The ``limit`` best documents, best first; equal scores in key order."""
        scores = self.scores
        if scores is None:
            return []
        keys = self.index._slot_keys
        matched = np.flatnonzero(scores > 0)
        if len(matched) > limit:
            # Keep every document scoring at least the limit-th best, so ties at the
            # boundary are resolved by key below, not by the partition's order.
            cutoff = np.partition(scores[matched], len(matched) - limit)[len(matched) - limit]
            matched = matched[scores[matched] >= cutoff]
        ranked = sorted(matched.tolist(), key=lambda i: (-scores[i], keys[i]))
        return [keys[i] for i in ranked[:limit]]

    def relative(self, key: str) -> float:
        """The document's score as a share of the best one's (0 to 1)."""
        slot = self.index._slots.get(key)
        if self.scores is None or slot is None or self.best <= 0.0:
            return 0.0
        return float(self.scores[slot]) / self.best
