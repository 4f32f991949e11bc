"""BM25 over Sudachi normalized content words, one document per indexed revision.

The dense encoder knows that 「支払い」 and 「納付」 are close; the lexical side knows
that a question sharing no word with any entry (「明日の天気は？」) is out of scope.
Postings (term -> documents) keep a search proportional to the documents that share a
word with the query, not to the size of the knowledge base.
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
        self._postings: dict[str, dict[str, int]] = {}  # term -> {doc key: frequency}
        self._docs: dict[str, frozenset[str]] = {}  # doc key -> its terms
        # Words of the title and phrasings alone: what the entry is about, as opposed
        # to everything its answer happens to mention.
        self._heads: dict[str, frozenset[str]] = {}
        self._lengths: dict[str, int] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, key: str, head: Iterable[str], body: Iterable[str]) -> None:
        """Index (or re-index) one document: ``head`` its title and phrasings, ``body`` the rest."""
        self.remove(key)
        terms: Counter[str] = Counter()
        for text in head:
            terms.update(content_terms(text))
        self._heads[key] = frozenset(terms)
        for text in body:
            terms.update(content_terms(text))
        for term, frequency in terms.items():
            self._postings.setdefault(term, {})[key] = frequency
        self._docs[key] = frozenset(terms)
        self._lengths[key] = sum(terms.values())
        self._total_length += self._lengths[key]

    def remove(self, key: str) -> None:
        terms = self._docs.pop(key, None)
        if terms is None:
            return
        for term in terms:
            docs = self._postings[term]
            del docs[key]
            if not docs:
                del self._postings[term]
        del self._heads[key]
        self._total_length -= self._lengths.pop(key)

    def idf(self, term: str) -> float:
        count = len(self._docs)
        df = len(self._postings.get(term, ()))
        return math.log(1.0 + (count - df + 0.5) / (df + 0.5))

    def scores(self, query_terms: list[str]) -> dict[str, float]:
        """BM25 score of every document sharing at least one term with the query."""
        if not self._docs:
            return {}
        average = self._total_length / len(self._docs)
        results: dict[str, float] = {}
        for term in set(query_terms):
            docs = self._postings.get(term)
            if not docs:
                continue
            weight = self.idf(term)
            for key, frequency in docs.items():
                norm = K1 * (1 - B + B * self._lengths[key] / average)
                results[key] = results.get(key, 0.0) + weight * (
                    frequency * (K1 + 1) / (frequency + norm)
                )
        return results

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
        in_head = sum(w for t, w in weights.items() if t in head)
        in_all = sum(w for t, w in weights.items() if t in terms)
        return max(in_head, BODY_DISCOUNT * in_all) / total
