"""The evaluation harness: exact metrics on hand-made rankings, and the CLI on the dev set."""

from __future__ import annotations

import json
import math

import pytest

from assistant.operations.config import PROJECT_ROOT
from assistant.retrieval.engine import Candidate, Decision
from assistant.retrieval.evaluation import EvaluationInputError, evaluate, read_qrels

DEV = PROJECT_ROOT / "assistant" / "retrieval" / "eval"


def decision(kind: str, *entry_ids: str) -> Decision:
    return Decision(kind, 0.5, tuple(Candidate(e, 1, e, 0.5, 0.5, 0.5) for e in entry_ids))


def test_metrics_on_known_rankings():
    queries = [("q1", "a"), ("q2", "b"), ("q3", "c"), ("q4", "d")]
    qrels = {"q1": {"x": 2}, "q2": {"y": 2, "z": 1}, "q3": {"x": 2}, "q4": {}}
    outcomes = {
        "a": decision("answer", "x", "y"),  # right answer
        "b": decision("clarify", "z", "y"),  # best entry second
        "c": decision("answer", "y", "w"),  # wrong answer, x not retrieved
        "d": decision("handoff", "x"),  # out of scope, rightly handed off
    }
    report = evaluate(queries, qrels, outcomes.__getitem__)
    q2_ndcg = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert report.ndcg_at_10 == pytest.approx((1 + q2_ndcg + 0) / 3)
    assert report.recall_at_10 == pytest.approx((1 + 1 + 0) / 3)
    assert report.hit_at_1 == pytest.approx(1 / 3)
    assert report.mrr == pytest.approx((1 + 0.5 + 0) / 3)
    assert report.answer_precision == pytest.approx(1 / 2)
    assert (report.in_scope, report.out_of_scope) == (3, 1)
    assert report.out_of_scope_rejection == 1.0


def test_malformed_qrels_are_reported(tmp_path):
    path = tmp_path / "qrels.json"
    path.write_text('["not", "a", "mapping"]', "utf-8")
    with pytest.raises(EvaluationInputError, match="expected {query id"):
        read_qrels(path)


def test_dev_set_is_large_enough_and_points_at_starter_entries():
    from tests.conftest import STARTER

    queries = (DEV / "dev_queries.jsonl").read_text("utf-8").splitlines()
    qrels = json.loads((DEV / "dev_qrels.json").read_text("utf-8"))
    assert len(queries) >= 300
    assert sum(1 for rel in qrels.values() if not rel) >= 50
    known = {p.stem for p in STARTER.glob("*.yaml")}
    assert {entry for rel in qrels.values() for entry in rel} <= known


def test_eval_command_reports_every_figure(starter_settings, madoguchi):
    result = madoguchi(
        starter_settings,
        "eval",
        "--queries",
        str(DEV / "dev_queries.jsonl"),
        "--qrels",
        str(DEV / "dev_qrels.json"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["queries"] >= 300
    for name in ("ndcg_at_10", "recall_at_10", "hit_at_1", "mrr", "answer_precision"):
        assert 0.0 <= report[name] <= 1.0
    assert {"handoff_rate", "out_of_scope_rejection"} <= set(report)
    assert_at_the_recorded_figures("starter", report)


def recorded_figures() -> dict[str, dict[str, float]]:
    """The README's table of recorded figures: {dev set: {column: value}}."""
    section = (DEV / "README.md").read_text("utf-8").split("## Recorded figures", 1)[1]
    table: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
        elif table:
            break
    header, _, *rows = table
    return {row[0]: dict(zip(header[1:], map(float, row[1:]), strict=True)) for row in rows}


def assert_at_the_recorded_figures(dev_set: str, report: dict) -> None:
    recorded = recorded_figures()[dev_set]
    for column, name in (("Hit@1", "hit_at_1"), ("answer precision", "answer_precision")):
        assert report[name] >= recorded[column] - FLOOR_SLACK, (dev_set, name, report[name])


# How far below the README's recorded figures a dev set may fall before make test fails.
FLOOR_SLACK = 0.02


def test_the_readme_records_both_dev_sets():
    figures = recorded_figures()
    assert set(figures) == {"starter", "faq"}
    assert all(0.5 < figures[s]["Hit@1"] <= 1.0 for s in figures)


def test_the_faq_dev_set_stays_at_the_recorded_figures(tmp_path_factory):
    from assistant.retrieval.engine import Engine
    from assistant.retrieval.evaluation import read_queries
    from knowledge.io import import_entries
    from knowledge.store import open_db
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("faq") / "home")
    db = open_db(settings.database_path)
    import_entries(db, DEV / "faq" / "entries.jsonl", "jsonl", publish=True)
    db.close()
    engine = Engine.load(settings)
    report = evaluate(
        read_queries(DEV / "faq" / "queries.jsonl"),
        read_qrels(DEV / "faq" / "qrels.json"),
        lambda text: engine.search(text, top_k=10),
    )
    assert report.queries >= 300
    assert_at_the_recorded_figures("faq", report.as_dict())


def test_tune_proposes_thresholds_that_the_engine_then_meets(starter_settings, madoguchi):
    dev = ["--queries", str(DEV / "dev_queries.jsonl"), "--qrels", str(DEV / "dev_qrels.json")]
    result = madoguchi(starter_settings, "eval", *dev, "--tune", "--json")
    assert result.returncode == 0, result.stderr
    proposal = json.loads(result.stdout)
    assert set(proposal["settings"]) == {
        "MADOGUCHI_ANSWER_THRESHOLD",
        "MADOGUCHI_CLARIFY_THRESHOLD",
        "MADOGUCHI_CLARIFY_FLOOR",
        "MADOGUCHI_OUT_OF_SCOPE_MARGIN",
    }
    assert proposal["answer_precision"] >= 0.95 and proposal["out_of_scope_rejection"] >= 0.9
    # The service run with them decides exactly as the proposal said.
    report = json.loads(
        madoguchi(starter_settings, "eval", *dev, "--json", env=proposal["settings"]).stdout
    )
    for name in ("answer_precision", "answer_rate", "handoff_rate", "out_of_scope_rejection"):
        assert report[name] == proposal[name], name


def test_tune_says_so_when_no_thresholds_reach_the_targets(starter_settings, madoguchi):
    dev = ["--queries", str(DEV / "dev_queries.jsonl"), "--qrels", str(DEV / "dev_qrels.json")]
    result = madoguchi(
        starter_settings, "eval", *dev, "--tune", "--min-precision", "1", "--min-rejection", "1"
    )
    assert result.returncode != 0
    assert "no thresholds give answer precision >= 1.0" in result.stderr
    bad = madoguchi(starter_settings, "eval", *dev, "--tune", "--min-precision", "95")
    assert bad.returncode == 2 and "is not a share from 0 to 1" in bad.stderr
