"""BM25 over Sudachi terms: scores, the in-force filter, ties, and incremental changes."""

from __future__ import annotations

import math

import pytest

from assistant.retrieval.lexical import K1, B, LexicalIndex
from assistant.retrieval.text import content_terms


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


def worked_example() -> LexicalIndex:
    """Three documents whose terms are known (checked below): N = 3, average length 2.
    a: head 犬, body 犬 猫 (犬 x2, 猫 x1, length 3); b: head 猫, body 鳥 (length 2);
    c: head 魚 (length 1)."""
    index = LexicalIndex()
    index.add("a", ["犬"], ["犬 猫"])
    index.add("b", ["猫"], ["鳥"])
    index.add("c", ["魚"], [])
    return index


def test_idf_bm25_and_coverage_against_figures_worked_out_by_hand():
    assert content_terms("犬 猫") == ["犬", "猫"] and content_terms("象") == ["象"]
    index = worked_example()
    assert (K1, B) == (1.2, 0.75)
    # idf = ln(1 + (N - df + 0.5) / (df + 0.5))
    assert index.idf("犬") == pytest.approx(0.9808292530117262)  # ln(8/3), df 1
    assert index.idf("猫") == pytest.approx(0.4700036292457356)  # ln(1.6), df 2
    assert index.idf("象") == pytest.approx(2.0794415416798357)  # ln 8, never seen
    scores = index.scores(["犬", "猫"])
    # a: 犬 tf 2, norm 1.2 x (0.25 + 0.75 x 3/2) = 1.65 -> ln(8/3) x 4.4 / 3.65
    #    猫 tf 1 -> ln(1.6) x 2.2 / 2.65
    assert scores["a"] == pytest.approx(1.1823695104798893 + 0.39019169220400696)
    # b: 猫 tf 1, norm 1.2 x (0.25 + 0.75 x 2/2) = 1.2 -> ln(1.6) x 2.2 / 2.2
    assert scores["b"] == pytest.approx(0.4700036292457356)
    assert set(scores) == {"a", "b"}
    # Coverage: the share of the query's idf found in the head, or 0.6 x the share
    # found anywhere, whichever is larger.
    weights = index.query_weights(["犬", "鳥"])  # ln(8/3) each
    assert index.coverage(weights, "a") == pytest.approx(0.5)  # 犬 in the head
    assert index.coverage(weights, "b") == pytest.approx(0.3)  # 鳥 in the body: 0.6 x 1/2
    assert index.coverage(weights, "c") == 0.0
    assert index.coverage(index.query_weights(["猫"]), "b") == 1.0
    # A word no entry has weighs as much as the rarest could: ln(8/3) / (ln(8/3) + ln 8).
    unseen = index.query_weights(["犬", "象"])
    assert index.coverage(unseen, "a") == pytest.approx(0.9808292530117262 / 3.060270794691562)
