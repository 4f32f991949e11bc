"""A city's FAQ file end to end, as an operator runs it: `madoguchi kb import FILE --format
jsonl --publish` of 1,800 one-question entries with ~350-character answers (index
included, nothing cached), the same import again (nothing changed: nothing re-encoded),
then `madoguchi search --batch` of 750 questions with the index in place.

Run by hand (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_faq_import.py --entries 1800 --queries 750

Entries are made from the FAQ dev set's own sentences (assistant/retrieval/eval/faq), shuffled, so
their lengths and words look like a city's list; the questions are the two dev sets'
questions, repeated to the count asked. The encoder directory is linked into a new
temporary folder, so its vector cache starts empty. Each command is a separate process,
as an operator's is; its wall time and peak memory are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAQ = PROJECT_ROOT / "assistant" / "retrieval" / "eval" / "faq"
STARTER_QUERIES = PROJECT_ROOT / "assistant" / "retrieval" / "eval" / "dev_queries.jsonl"


def faq_entries(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    source = [json.loads(line) for line in (FAQ / "entries.jsonl").read_text("utf-8").splitlines()]
    sentences = [s for e in source for s in e["answer"].replace("\n", "").split("。") if s]
    titles = [e["title"] for e in source]
    entries = []
    for n in range(count):
        answer = ""
        while len(answer) < 330:
            answer += rng.choice(sentences) + "。"
        title = f"{rng.choice(titles).rstrip('。？?')}（{n}）"
        entries.append(
            {"id": f"faq-{n:05d}", "title": title, "questions": [title], "answer": answer}
        )
    return entries


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1800)
    parser.add_argument("--queries", type=int, default=750)
    parser.add_argument("--encoder", default=str(PROJECT_ROOT / "var" / "encoder"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    madoguchi = str(Path(sys.executable).with_name("madoguchi"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        encoder = root / "models" / "encoder"
        encoder.symlink_to(Path(args.encoder).resolve())
        words = Path(args.encoder).resolve().parent / "word-vectors"
        if words.is_dir():
            (root / "models" / "word-vectors").symlink_to(words)
        env = {
            **os.environ,
            "MADOGUCHI_HOME": str(root / "home"),
            "MADOGUCHI_ENCODER": str(encoder),
            "HF_HUB_OFFLINE": "1",
        }
        path = root / "faq.jsonl"
        path.write_text(
            "".join(
                json.dumps(e, ensure_ascii=False) + "\n"
                for e in faq_entries(args.entries, args.seed)
            ),
            "utf-8",
        )
        imported, out = run(
            [madoguchi, "kb", "import", str(path), "--format", "jsonl", "--publish"], env
        )
        import_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
        again, _ = run(
            [madoguchi, "kb", "import", str(path), "--format", "jsonl", "--publish"], env
        )
        texts = [
            json.loads(line)["text"]
            for line in (FAQ / "queries.jsonl").read_text("utf-8").splitlines()
        ]
        texts += [
            json.loads(line)["text"] for line in STARTER_QUERIES.read_text("utf-8").splitlines()
        ]
        queries = root / "queries.jsonl"
        queries.write_text(
            "".join(
                json.dumps({"id": f"q{n}", "text": texts[n % len(texts)]}, ensure_ascii=False)
                + "\n"
                for n in range(args.queries)
            ),
            "utf-8",
        )
        batch, results = run([madoguchi, "search", "--batch", str(queries), "--top-k", "10"], env)
        print(
            json.dumps(
                {
                    "entries": args.entries,
                    "import_publish_s": round(imported, 1),
                    "import_peak_rss_mb": import_rss,
                    "import_again_unchanged_s": round(again, 1),
                    "batch_queries": args.queries,
                    "batch_lines": len(results.splitlines()),
                    "search_batch_s": round(batch, 1),
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
                    "summary": out.strip().splitlines()[:2],
                    "cores": os.cpu_count(),
                    "threads": os.environ.get("OMP_NUM_THREADS", "default"),
                },
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
