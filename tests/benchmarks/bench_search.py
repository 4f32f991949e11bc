"""Search benchmark: index build time, latency p50/p99, batch throughput, peak memory.

Run by hand (not part of the test suite), one size per process so peak memory is its own:

    .venv/bin/python tests/benchmarks/bench_search.py --entries 2000
    .venv/bin/python tests/benchmarks/bench_search.py --entries 100000 --queries 300

Synthetic entries are made from the starter entries' own sentences, shuffled, so their
words, lengths and overlaps look like a city FAQ. Threads are limited to one, as the
targets are stated per core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from assistant.operations.config import PROJECT_ROOT, Settings  # noqa: E402
from assistant.retrieval.engine import Engine  # noqa: E402
from knowledge.io import import_entries  # noqa: E402
from knowledge.store import open_db  # noqa: E402

STARTER = PROJECT_ROOT / "knowledge" / "starter"


def synthetic_entries(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    starter = [yaml.safe_load(p.read_text("utf-8")) for p in sorted(STARTER.glob("*.yaml"))]
    sentences = [s for e in starter for s in e["answer"].replace("\n", "。").split("。") if s]
    questions = [q for e in starter for q in e["questions"]]
    titles = [e["title"] for e in starter]
    entries = []
    for n in range(count):
        entries.append(
            {
                "id": f"synthetic-{n:06d}",
                "title": f"{rng.choice(titles)}（{n}）",
                "questions": [f"{rng.choice(questions)}（その{n}）"],
                "answer": "。".join(rng.sample(sentences, 4)) + "。",
            }
        )
    return entries


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--encoder", default=str(PROJECT_ROOT / "var" / "encoder"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings.from_env(
            {"MADOGUCHI_HOME": str(home), "MADOGUCHI_ENCODER": args.encoder}
        )
        source = home / "entries.jsonl"
        with open(source, "w", encoding="utf-8") as out:
            for entry in synthetic_entries(args.entries, seed=1):
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        started = time.perf_counter()
        import_entries(open_db(settings.database_path), source, "jsonl", publish=True)
        import_s = time.perf_counter() - started

        started = time.perf_counter()
        engine = Engine.load(settings)
        build_s = time.perf_counter() - started
        del engine
        started = time.perf_counter()
        engine = Engine.load(settings)  # what every later start costs: the index on disk
        restart_s = time.perf_counter() - started

        starter = [yaml.safe_load(p.read_text("utf-8")) for p in sorted(STARTER.glob("*.yaml"))]
        rng = random.Random(2)
        texts = [rng.choice(rng.choice(starter)["questions"]) for _ in range(args.queries)]
        for text in texts[:20]:  # warm-up
            engine.search(text)
        latencies = []
        started = time.perf_counter()
        for text in texts:
            t0 = time.perf_counter()
            engine.search(text, top_k=10)
            latencies.append((time.perf_counter() - t0) * 1000)
        batch_s = time.perf_counter() - started

        report = {
            "entries": args.entries,
            "vectors": engine.dense.faiss_index.ntotal,
            "faiss_index": type(engine.dense.faiss_index).__name__,
            "import_s": round(import_s, 1),
            "index_build_s": round(build_s, 1),
            "restart_s": round(restart_s, 1),
            "search_p50_ms": round(statistics.median(latencies), 2),
            "search_p99_ms": round(percentile(latencies, 0.99), 2),
            "throughput_qps": round(len(texts) / batch_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cores": os.cpu_count(),
            "threads": 1,
        }
        json.dump(report, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
