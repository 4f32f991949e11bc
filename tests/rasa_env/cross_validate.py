"""NLU cross-validation with fixed folds, trained two at a time: `make nlu-report` runs
this in .venv-rasa.

    .venv-rasa/bin/python tests/rasa_env/cross_validate.py OUT_DIR [FOLDS]

It does what `rasa test nlu --cross-validation` does, with two differences:

- **Fixed folds.** Rasa shuffles its folds with NumPy's global generator and no seed, so
  two runs on the same data would report different figures. The folds are drawn here
  with Rasa's own `generate_folds` after seeding it, so the report is a function of the
  training data and configuration alone.
- **Folds in parallel.** Each fold is trained and tested in a process of its own with one
  TensorFlow thread, as many at once as there are cores (at most two). DIET on this data
  uses little more than one core, so two folds at once take about the time of one.
  The report is written by Rasa's `evaluate_intents` from the test folds' predictions, in
  fold order: the same files (intent_report.json, intent_errors.json, the plots) as before.
  Rasa's CV also scores each model on its own training part, for a log line only; that
  is left out.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 20261126
CONFIG = "training_data/config.yml"
NLU = "training_data/nlu"
# One thread per fold process: the folds, not the threads, use the cores.
ONE_THREAD = {
    "TF_INTRA_OP_PARALLELISM_THREADS": "1",
    "TF_INTER_OP_PARALLELISM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def write_folds(work: Path, folds: int) -> int:
    """The configuration as ``work/config.yml`` and the folds, each as train.yml and
    test.yml under ``work/fold-N``; returns how many folds."""
    from rasa.nlu.test import drop_intents_below_freq, generate_folds
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.utils.io import write_yaml

    config = TrainingDataImporter.load_from_dict(config_path=CONFIG).get_config()
    write_yaml(config, work / "config.yml")
    data = TrainingDataImporter.load_from_dict(training_data_paths=[NLU]).get_nlu_data()
    data = drop_intents_below_freq(data, cutoff=folds)  # as `rasa test nlu` does
    random.seed(SEED)
    np.random.seed(SEED)
    count = 0
    for number, (train, test) in enumerate(generate_folds(folds, data)):
        where = work / f"fold-{number}"
        where.mkdir()
        RasaYAMLWriter().dump(where / "train.yml", train)
        RasaYAMLWriter().dump(where / "test.yml", test)
        count += 1
    return count


def run_fold(where: Path) -> None:
    """Train on ``where/train.yml`` with the configuration beside the folds, predict
    ``where/test.yml``; the predictions go to ``where/results.json``."""
    import asyncio

    import rasa.model_training
    from rasa.core.agent import Agent
    from rasa.nlu.test import get_eval_data, remove_empty_intent_examples
    from rasa.shared.importers.importer import TrainingDataImporter

    config = str(where.parent / "config.yml")
    model = rasa.model_training.train_nlu(config, str(where / "train.yml"), str(where))
    processor = Agent.load(model).processor
    test = TrainingDataImporter.load_from_dict(
        training_data_paths=[str(where / "test.yml")]
    ).get_nlu_data()
    intents, _, _ = asyncio.run(get_eval_data(processor, test))
    results = [list(r) for r in remove_empty_intent_examples(intents)]
    (where / "results.json").write_text(json.dumps(results, ensure_ascii=False), "utf-8")


def run_folds(work: Path, count: int) -> None:
    """Every fold in its own process, ``min(2, cores)`` at a time; a failed fold stops
    the run with its output."""
    parallel = max(1, min(2, os.cpu_count() or 1))
    pending = [work / f"fold-{n}" for n in range(count)]
    running: list[tuple[Path, subprocess.Popen, float]] = []
    env = {**os.environ, **ONE_THREAD}
    while pending or running:
        while pending and len(running) < parallel:
            where = pending.pop(0)
            command = [sys.executable, __file__, "--fold", str(where)]
            with open(where / "fold.log", "wb") as log:  # the child keeps its own copy
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((where, process, time.monotonic()))
            print(f"fold {where.name}: training", flush=True)
        time.sleep(1)
        for item in list(running):
            where, process, started = item
            if process.poll() is None:
                continue
            running.remove(item)
            took = time.monotonic() - started
            if process.returncode != 0:
                for _, other, _ in running:
                    other.kill()
                tail = (where / "fold.log").read_text("utf-8", errors="replace")[-4000:]
                sys.exit(f"fold {where.name} failed (exit {process.returncode}):\n{tail}")
            print(f"fold {where.name}: done in {took:.0f} s", flush=True)


def report(work: Path, count: int, out: str) -> None:
    from rasa.nlu.test import IntentEvaluationResult, evaluate_intents
    from rasa.shared.utils.io import create_directory

    results = [
        IntentEvaluationResult(*row)
        for n in range(count)
        for row in json.loads((work / f"fold-{n}" / "results.json").read_text("utf-8"))
    ]
    create_directory(out)
    evaluation = evaluate_intents(
        results, out, successes=False, errors=True, disable_plotting=False, report_as_dict=True
    )
    f1 = evaluation["report"]["macro avg"]["f1-score"]
    print(f"{count} folds, {len(results)} test examples: intent macro-F1 {f1:.3f}")


def main() -> None:
    if sys.argv[1] == "--fold":
        run_fold(Path(sys.argv[2]))
        return
    out, folds = sys.argv[1], int(sys.argv[2] if len(sys.argv) > 2 else "5")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nlu-cv-") as temp:
        work = Path(temp)
        count = write_folds(work, folds)
        run_folds(work, count)
        report(work, count, out)
    print(f"cross-validation took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
