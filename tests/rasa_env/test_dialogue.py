"""The trained dialogue model against conversation tests, and the saved NLU
cross-validation report (run in the Rasa environment).

`make test` trains the model and runs the cross-validation when the training data
changed; these tests read what that produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import built_rasa_model

ROOT = Path(__file__).resolve().parents[2]
CONVERSATIONS = Path(__file__).parent / "conversations"
TRAINING = ROOT / "training_data"
MACRO_F1_TARGET = 0.90


def nlu_report() -> Path:
    home = Path(os.environ.get("MADOGUCHI_HOME") or ROOT / "var")
    path = home / "rasa" / "reports" / "nlu" / "intent_report.json"
    if not path.is_file():
        pytest.fail(f"no NLU cross-validation report at {path}: run `make nlu-report`")
    return path


def test_there_are_at_least_twenty_conversation_tests():
    stories = [
        story
        for path in CONVERSATIONS.glob("*.yml")
        for story in yaml.safe_load(path.read_text(encoding="utf-8"))["stories"]
    ]
    assert len(stories) >= 20
    assert len({s["story"] for s in stories}) == len(stories), "story names must be unique"


def test_conversations_are_predicted_without_a_single_error(tmp_path):
    rasa = Path(sys.executable).with_name("rasa")
    result = subprocess.run(
        [
            str(rasa),
            "test",
            "core",
            "--model",
            str(built_rasa_model()),
            "--stories",
            str(CONVERSATIONS),
            "--fail-on-prediction-errors",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text(encoding="utf-8") if failed.is_file() else result.stderr[-3000:]
    assert result.returncode == 0, details
    report = json.loads((tmp_path / "story_report.json").read_text(encoding="utf-8"))
    assert report["conversation_accuracy"]["accuracy"] == 1.0


def test_nlu_cross_validation_is_current_and_meets_the_target():
    report_path = nlu_report()
    newest_data = max(p.stat().st_mtime for p in TRAINING.rglob("*.yml"))
    assert report_path.stat().st_mtime >= newest_data, "stale report: run `make nlu-report`"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    intents = {
        name
        for name in report
        if isinstance(report[name], dict)
        and "support" in report[name]
        and name not in {"macro avg", "weighted avg", "micro avg"}
    }
    domain = yaml.safe_load((TRAINING / "domain.yml").read_text(encoding="utf-8"))
    assert set(domain["intents"]) <= intents
    f1 = report["macro avg"]["f1-score"]
    print(f"NLU cross-validation intent macro-F1: {f1:.3f}")
    assert f1 >= MACRO_F1_TARGET
