"""BM25 over Sudachi normalized content words, one document per entry.

The dense encoder knows that 「支払い」 and 「納付」 are close; the lexical side knows
that a question sharing no word with any entry (「明日の天気は？」) is out of scope.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from assistant.text import content_terms

K1 = 1.2
B = 0.75
BODY_DISCOUNT = 0.6


class LexicalIndex:
    def __init__(self) -> None:
        self._docs: dict[str, Counter[str]] = {}
        # Words of the title and phrasings alone: what the entry is about, as opposed
        # to everything its answer happens to mention.
        self._heads: dict[str, frozenset[str]] = {}
        self._lengths: dict[str, int] = {}
        self._df: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, entry_id: str, head: Iterable[str], body: Iterable[str]) -> None:
        """Index (or re-index) one entry: ``head`` its title and phrasings, ``body`` the rest."""
        self.remove(entry_id)
        terms: Counter[str] = Counter()
        for text in head:
            terms.update(content_terms(text))
        self._heads[entry_id] = frozenset(terms)
        for text in body:
            terms.update(content_terms(text))
        self._docs[entry_id] = terms
        self._lengths[entry_id] = sum(terms.values())
        self._df.update(terms.keys())

    def remove(self, entry_id: str) -> None:
        terms = self._docs.pop(entry_id, None)
        if terms is None:
            return
        self._heads.pop(entry_id)
        self._lengths.pop(entry_id)
        self._df.subtract(terms.keys())
        for term in terms:
            if self._df[term] <= 0:
                del self._df[term]

    def idf(self, term: str) -> float:
        count = len(self._docs)
        df = self._df.get(term, 0)
        return math.log(1.0 + (count - df + 0.5) / (df + 0.5))

    def scores(self, query_terms: list[str]) -> dict[str, float]:
        """BM25 score of every entry sharing at least one term with the query."""
        if not self._docs:
            return {}
        average = sum(self._lengths.values()) / len(self._docs)
        results: dict[str, float] = {}
        for term in set(query_terms):
            if term not in self._df:
                continue
            weight = self.idf(term)
            for entry_id, terms in self._docs.items():
                frequency = terms.get(term)
                if not frequency:
                    continue
                norm = K1 * (1 - B + B * self._lengths[entry_id] / average)
                results[entry_id] = results.get(entry_id, 0.0) + weight * (
                    frequency * (K1 + 1) / (frequency + norm)
                )
        return results

    def coverage(self, query_terms: list[str], entry_id: str) -> float:
        """Share of the query's IDF mass found in the entry: 1.0 when every word matches.

        Words found only in the answer count for less (BODY_DISCOUNT): an answer that
        mentions パスポート as an ID document is not about passports.
        """
        terms = self._docs.get(entry_id)
        unique = set(query_terms)
        if not terms or not unique:
            return 0.0
        head = self._heads[entry_id]
        # Words the index has never seen weigh as much as its rarest words.
        top = math.log(1.0 + (len(self._docs) + 0.5) / 0.5)
        total = sum(self.idf(t) if t in self._df else top for t in unique)
        in_head = sum(self.idf(t) for t in unique if t in head)
        in_all = sum(self.idf(t) for t in unique if t in terms)
        return max(in_head, BODY_DISCOUNT * in_all) / total if total else 0.0
