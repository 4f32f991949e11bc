"""The ranking core on its own (assistant.retrieval.ranking): the decision at every boundary, the
phrasing bonus, the evidence read from candidates, and the out-of-scope closeness.
No index and no encoder: every figure here is worked out by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from assistant.retrieval.ranking import (
    FULL_PHRASINGS,
    OUT_OF_SCOPE_WEIGHT,
    PHRASING_BONUS,
    SHORT_QUESTION_SLACK,
    SHORT_QUESTION_WORDS,
    Candidate,
    Evidence,
    Thresholds,
    answer_probability,
    choices_probability,
    decide,
    out_of_scope_closeness,
    phrasing_bonus,
    probe_threshold,
    rank_score,
)

# Evidence a long way from every threshold, to move one figure at a time.
CLEAR = Evidence(confidence=0.95, coverage=1.0, lead=0.2, out_of_scope=0.0, words=3, nearest=0.95)
OPEN = Thresholds(answer=0.5, choices=0.5, floor=0.5, out_of_scope_margin=0.5)


def kind(evidence: Evidence, thresholds: Thresholds) -> str:
    return str(decide(evidence, thresholds))


def with_(evidence: Evidence, **changes) -> Evidence:
    return replace(evidence, **changes)


def with_thresholds(**changes) -> Thresholds:
    return replace(OPEN, **changes)


def test_the_answer_threshold_is_inclusive():
    p = float(answer_probability(CLEAR))
    assert kind(CLEAR, with_thresholds(answer=p)) == "answer"
    assert kind(CLEAR, with_thresholds(answer=math.nextafter(p, 1.0))) == "clarify"


def test_the_choices_threshold_is_inclusive_and_otherwise_hands_off():
    p = float(choices_probability(CLEAR))
    no_answer = {"answer": 1.1}
    assert kind(CLEAR, with_thresholds(choices=p, **no_answer)) == "clarify"
    assert kind(CLEAR, with_thresholds(choices=math.nextafter(p, 1.0), **no_answer)) == "handoff"


def test_the_floor_is_inclusive_and_applies_to_choices_only():
    no_answer = {"answer": 1.1, "choices": 0.0}
    assert kind(CLEAR, with_thresholds(floor=0.95, **no_answer)) == "clarify"
    assert kind(CLEAR, with_thresholds(floor=math.nextafter(0.95, 1.0), **no_answer)) == "handoff"
    # A direct answer does not look at the floor.
    assert kind(CLEAR, with_thresholds(floor=0.99)) == "answer"


def test_the_out_of_scope_margin_is_strict_and_weighs_the_examples():
    # 0.75 x 1.0 - 0.5 = 0.25: rejected only when that exceeds the margin.
    near_examples = with_(CLEAR, out_of_scope=1.0, nearest=0.5)
    assert OUT_OF_SCOPE_WEIGHT == 0.75
    assert kind(near_examples, with_thresholds(out_of_scope_margin=0.25)) == "answer"
    assert kind(near_examples, with_thresholds(out_of_scope_margin=0.2499)) == "handoff"
    # The nearest of the entries offered counts, not the best entry's own cosine.
    assert kind(with_(near_examples, nearest=0.6), with_thresholds(out_of_scope_margin=0.2)) == (
        "answer"
    )
    # Without a nearest figure, the best entry's cosine is used.
    assert kind(with_(near_examples, nearest=None), with_thresholds(out_of_scope_margin=-0.2)) == (
        "handoff"
    )


def test_a_short_question_gets_a_wider_margin():
    assert SHORT_QUESTION_WORDS == 2 and SHORT_QUESTION_SLACK == 0.01
    evidence = with_(CLEAR, out_of_scope=1.0, nearest=0.5)  # 0.25 over the examples
    t = with_thresholds(out_of_scope_margin=0.245)
    assert kind(with_(evidence, words=3), t) == "handoff"
    assert kind(with_(evidence, words=2), t) == "answer"
    assert kind(with_(evidence, words=2), with_thresholds(out_of_scope_margin=0.235)) == "handoff"


def test_one_word_gets_choices_and_an_unknown_word_hands_off():
    assert kind(with_(CLEAR, words=1), OPEN) == "clarify"
    assert kind(with_(CLEAR, words=1, known=False), OPEN) == "handoff"
    assert kind(with_(CLEAR, words=2, known=False), OPEN) == "answer"  # only single words
    assert kind(with_(CLEAR, words=0), OPEN) == "clarify"


def test_a_foreign_word_turns_an_answer_into_choices_and_nothing_else():
    assert kind(with_(CLEAR, foreign=True), OPEN) == "clarify"
    # It never makes choices where there would be none, nor keeps a handoff from happening.
    no_choices = with_thresholds(answer=1.1, choices=1.1)
    assert kind(with_(CLEAR, foreign=True), no_choices) == "handoff"
    far = with_(CLEAR, out_of_scope=1.0, nearest=0.1, foreign=True)
    assert kind(far, with_thresholds(out_of_scope_margin=0.0)) == "handoff"


def test_decide_on_arrays_agrees_with_each_question_alone():
    rows = [
        CLEAR,
        with_(CLEAR, words=1),
        with_(CLEAR, out_of_scope=1.0, nearest=0.1),
        with_(CLEAR, confidence=0.3, nearest=0.3, lead=0.0, coverage=0.1),
    ]
    t = Thresholds(answer=0.9, choices=0.2, floor=0.8, out_of_scope_margin=-0.2)
    arrays = Evidence(
        *(
            np.array([getattr(r, name) for r in rows], dtype="float64")
            for name in ("confidence", "coverage", "lead", "out_of_scope", "words")
        ),
        known=np.array([r.known for r in rows]),
        nearest=np.array([r.nearest for r in rows], dtype="float64"),
    )
    assert list(decide(arrays, t)) == [kind(r, t) for r in rows]
    assert list(decide(arrays, t)) == ["answer", "clarify", "handoff", "handoff"]


def test_the_phrasing_bonus_falls_with_the_log_of_the_phrasings():
    assert (PHRASING_BONUS, FULL_PHRASINGS) == (0.03, 16)
    assert phrasing_bonus(1) == pytest.approx(0.03)
    assert phrasing_bonus(0) == pytest.approx(0.03)  # no phrasing counts as one
    assert phrasing_bonus(4) == pytest.approx(0.015)  # log 4 / log 16 = 1/2
    assert phrasing_bonus(2) == pytest.approx(0.0225)
    assert phrasing_bonus(16) == 0.0
    assert phrasing_bonus(200) == 0.0


def test_evidence_of_candidates_reads_the_cosines_with_their_bonus():
    candidates = [
        Candidate("faq", 1, "一問の項目", score=0.80, dense=0.86, coverage=0.7, phrasings=1),
        Candidate(
            "many", 1, "言い換えの多い項目", score=0.75, dense=0.88, coverage=0.9, phrasings=16
        ),
        Candidate("few", 1, "言い換え四つ", score=0.70, dense=0.87, coverage=0.5, phrasings=4),
        Candidate("fourth", 1, "四番目", score=0.60, dense=0.99, coverage=0.5, phrasings=1),
    ]
    e = Evidence.of(candidates, out_of_scope=0.5, words=3, known=True)
    assert e.confidence == pytest.approx(0.86 + 0.03)
    assert e.coverage == 0.7
    assert e.lead == pytest.approx(0.05)
    # The best of the first three, bonus included (0.89 > 0.885 > 0.88); never the fourth.
    assert e.nearest == pytest.approx(0.89)
    alone = Evidence.of(candidates[:1], out_of_scope=0.0)
    assert alone.lead == pytest.approx(0.80) and alone.nearest == pytest.approx(0.89)


def test_out_of_scope_closeness_is_the_mean_of_the_two_closest():
    assert out_of_scope_closeness(np.array([])) == 0.0
    assert out_of_scope_closeness(np.array([0.7])) == pytest.approx(0.7)
    assert out_of_scope_closeness(np.array([0.1, 0.5, 0.3, 0.2])) == pytest.approx(0.4)


def test_the_rank_score_weighs_each_signal_and_ignores_negative_cosines():
    assert rank_score(1.0, 0.0, 0.0, 0.0) == pytest.approx(0.7)
    assert rank_score(0.0, 1.0, 0.0, 0.0) == pytest.approx(0.2)
    assert rank_score(0.0, 0.0, 1.0, 1.0) == pytest.approx(0.1)
    assert rank_score(-0.5, -0.5, 0.0, 0.0) == 0.0
    assert rank_score(0.9, 0.8, 0.5, 0.25) == pytest.approx(0.63 + 0.16 + 0.025 + 0.0125)


def test_the_rank_score_reads_the_cosine_with_the_phrasing_bonus():
    # One question text: +0.03 to the cosine; two: 0.03 * (1 - log 2 / log 16) = 0.0225.
    assert rank_score(0.8, 0.0, 0.0, 0.0, phrasings=1) == pytest.approx(0.7 * 0.83)
    assert rank_score(0.8, 0.0, 0.0, 0.0, phrasings=2) == pytest.approx(0.7 * 0.8225)
    assert rank_score(0.8, 0.0, 0.0, 0.0, phrasings=40) == pytest.approx(0.7 * 0.8)
    # A one-question entry keeps its place before one that leads only by having more
    # phrasings (the best of more cosines), and no cosine gets a bonus from nothing.
    assert rank_score(0.80, 0.0, 0.0, 0.0, 1) > rank_score(0.82, 0.0, 0.0, 0.0, 16)
    assert rank_score(-0.2, 0.0, 0.5, 0.0, 1) == pytest.approx(0.05 * 0.5)


def test_probe_threshold_leaves_at_most_the_share_above():
    assert probe_threshold([], 0.9) == 0.9
    probes = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    # 2 of 100 may stay above: the third highest (0.97) must not answer.
    assert probe_threshold(probes, 0.5) == pytest.approx(0.97 + 1e-6)
    assert probe_threshold(probes, 0.99) == 0.99  # never below the minimum
    assert probe_threshold([0.9995], 0.5) == 0.999  # never above 0.999
