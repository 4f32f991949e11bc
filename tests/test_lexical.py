"""BM25 over Sudachi terms: scores, the in-force filter, ties, and incremental changes."""

from __future__ import annotations

import math

from assistant.lexical import K1, B, LexicalIndex
from assistant.text import content_terms


def bm25_by_hand(index: LexicalIndex, query: str, key: str) -> float:
    """The textbook formula, term by term, to check the vectorized scores against."""
    average = sum(index._lengths.values()) / len(index._lengths)
    total = 0.0
    for term in set(content_terms(query)):
        frequency = index._postings.get(term, {}).get(key, 0)
        if frequency:
            norm = K1 * (1 - B + B * index._lengths[key] / average)
            total += index.idf(term) * frequency * (K1 + 1) / (frequency + norm)
    return total


def small_index() -> LexicalIndex:
    index = LexicalIndex()
    index.add("gomi", ["粗大ごみの出し方"], ["粗大ごみは申込制です。処理券を貼って出します。"])
    index.add("shigen", ["資源ごみの出し方"], ["資源ごみは水曜日に出します。"])
    index.add("juminhyo", ["住民票の写し"], ["住民票は市民課で請求できます。"])
    return index


def test_scores_match_the_formula():
    index = small_index()
    scores = index.scores(content_terms("粗大ごみの出し方"))
    assert set(scores) == {"gomi", "shigen"}
    for key, score in scores.items():
        assert math.isclose(score, bm25_by_hand(index, "粗大ごみの出し方", key), rel_tol=1e-12)


def test_top_ranks_filters_and_breaks_ties_by_key():
    index = small_index()
    terms = content_terms("ごみの出し方")
    ranked = index.hits(terms).top(5)
    scores = index.scores(terms)
    assert ranked == sorted(scores, key=lambda k: (-scores[k], k))
    assert index.hits(terms).top(1) == ranked[:1]
    only_shigen = index.mask(["shigen", "juminhyo"])
    assert index.hits(terms, only_shigen).top(5) == ["shigen"]
    assert index.hits(content_terms("天気予報")).top(5) == []

    twins = LexicalIndex()
    for key in ["b", "c", "a"]:
        twins.add(key, ["住民票"], [])
    assert twins.hits(["住民"]).top(2) == twins.hits(content_terms("住民票")).top(2) == ["a", "b"]


def test_removed_documents_free_their_slot_and_scores_stay_exact():
    index = small_index()
    index.remove("gomi")
    assert "gomi" not in index.scores(content_terms("粗大ごみ"))
    index.add("sodai", ["粗大ごみの申込み"], ["電話で申し込みます。"])  # reuses the slot
    assert index.hits(content_terms("粗大ごみ")).top(5)[0] == "sodai"
    fresh = LexicalIndex()
    fresh.add("shigen", ["資源ごみの出し方"], ["資源ごみは水曜日に出します。"])
    fresh.add("juminhyo", ["住民票の写し"], ["住民票は市民課で請求できます。"])
    fresh.add("sodai", ["粗大ごみの申込み"], ["電話で申し込みます。"])
    # The same documents give the same scores whatever the history of the index.
    query = content_terms("粗大ごみや資源ごみの出し方")
    assert index.scores(query) == fresh.scores(query)
