"""Retrieval and decision quality of the engine on a set of queries with graded relevance.

Queries: JSONL lines ``{"id", "text"}``. Relevance (qrels): JSON ``{query id: {entry id:
grade}}`` with grade 2 for the entry that answers and 1 for a useful one. A query with no
relevant entry (absent, or ``{}``) is out of scope: its right outcome is a handoff.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.engine import Decision


class EvaluationInputError(ValueError):
    """The queries or relevance file is malformed; the message says where."""


@dataclass(frozen=True)
class Report:
    queries: int
    in_scope: int
    out_of_scope: int
    ndcg_at_10: float
    recall_at_10: float
    hit_at_1: float
    mrr: float
    answer_precision: float  # of all "answer" decisions, the share that answered rightly
    answer_rate: float  # in-scope queries answered directly
    clarify_rate: float  # in-scope queries that got choices
    handoff_rate: float  # in-scope queries handed off
    out_of_scope_rejection: float  # out-of-scope queries handed off
    out_of_scope_answered: float  # out-of-scope queries given an answer (the worst outcome)

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def lines(self) -> list[str]:
        return [f"{name:<24} {value}" for name, value in self.as_dict().items()]


def read_queries(path: Path) -> list[tuple[str, str]]:
    queries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            queries.append((str(record["id"]), str(record["text"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise EvaluationInputError(
                f'{Path(path).name}:{number}: expected {{"id", "text"}}'
            ) from None
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EvaluationInputError(f"{Path(path).name}: not valid JSON ({error.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise EvaluationInputError(f"{Path(path).name}: expected {{query id: {{entry id: grade}}}}")
    return {
        str(q): {str(e): int(g) for e, g in rel.items() if int(g) > 0} for q, rel in data.items()
    }


def dcg(grades: Iterable[int]) -> float:
    return sum((2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(grades))


def evaluate(
    queries: list[tuple[str, str]],
    qrels: dict[str, dict[str, int]],
    search: Callable[[str], Decision],
) -> Report:
    ndcg = recall = hit = mrr = 0.0
    answered = answered_right = 0
    kinds_in = {"answer": 0, "clarify": 0, "handoff": 0}
    kinds_out = {"answer": 0, "clarify": 0, "handoff": 0}
    in_scope = 0
    for query_id, text in queries:
        decision = search(text)
        ranked = [c.entry_id for c in decision.candidates[:10]]
        relevant = qrels.get(query_id, {})
        if decision.kind == "answer":
            answered += 1
        if not relevant:
            kinds_out[decision.kind] += 1
            continue
        in_scope += 1
        kinds_in[decision.kind] += 1
        best_grade = max(relevant.values())
        best = {e for e, g in relevant.items() if g == best_grade}
        ideal = dcg(sorted(relevant.values(), reverse=True)[:10])
        ndcg += dcg(relevant.get(e, 0) for e in ranked) / ideal
        recall += len(set(ranked) & relevant.keys()) / len(relevant)
        hit += 1.0 if ranked[:1] and ranked[0] in best else 0.0
        rank = next((i for i, e in enumerate(ranked, 1) if e in best), None)
        mrr += 1.0 / rank if rank else 0.0
        if decision.kind == "answer" and ranked[0] in best:
            answered_right += 1
    out = len(queries) - in_scope

    def share(count: float, total: int) -> float:
        return count / total if total else 0.0

    return Report(
        queries=len(queries),
        in_scope=in_scope,
        out_of_scope=out,
        ndcg_at_10=share(ndcg, in_scope),
        recall_at_10=share(recall, in_scope),
        hit_at_1=share(hit, in_scope),
        mrr=share(mrr, in_scope),
        answer_precision=share(answered_right, answered),
        answer_rate=share(kinds_in["answer"], in_scope),
        clarify_rate=share(kinds_in["clarify"], in_scope),
        handoff_rate=share(kinds_in["handoff"], in_scope),
        out_of_scope_rejection=share(kinds_out["handoff"], out),
        out_of_scope_answered=share(kinds_out["answer"], out),
    )
