"""NLU cross-validation with fixed folds: `make nlu-report` runs this in .venv-rasa.

`rasa test nlu --cross-validation` shuffles its folds with NumPy's global generator and
no seed, so two runs on the same data would report different figures. Seeding it first
makes the report a function of the training data and configuration alone.

    .venv-rasa/bin/python tests/rasa_env/cross_validate.py OUT_DIR [FOLDS]
"""

from __future__ import annotations

import random
import sys

import numpy as np

SEED = 20261126


def main() -> None:
    out, folds = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "5")
    random.seed(SEED)
    np.random.seed(SEED)
    from rasa.__main__ import main as rasa_main

    sys.argv = [
        "rasa", "test", "nlu",
        "--config", "training_data/config.yml",
        "--nlu", "training_data/nlu",
        "--cross-validation", "--folds", folds,
        "--out", out,
    ]  # fmt: skip
    rasa_main()


if __name__ == "__main__":
    main()
