"""Shared fixtures: a fresh knowledge home per test (real SQLite, real encoder, real index).

The encoder is built once by `make setup` (MADOGUCHI_HOME/encoder); tests reuse it
read-only and put everything else in a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.config import PROJECT_ROOT, Settings

STARTER = PROJECT_ROOT / "knowledge" / "starter"
STARTER_COUNT = len(list(STARTER.glob("*.yaml")))


def built_encoder() -> Path:
    configured = os.environ.get("MADOGUCHI_ENCODER")
    home = Path(os.environ.get("MADOGUCHI_HOME") or PROJECT_ROOT / "var")
    path = Path(configured) if configured else home / "encoder"
    if not (path / "modules.json").is_file():
        pytest.fail(f"no encoder at {path}: run `make setup` first")
    return path


def built_rasa_model() -> Path:
    home = Path(os.environ.get("MADOGUCHI_HOME") or PROJECT_ROOT / "var")
    path = home / "rasa" / "models" / "madoguchi.tar.gz"
    if not path.is_file():
        pytest.fail(f"no trained Rasa model at {path}: run `make setup` first")
    return path


def make_settings(home: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"MADOGUCHI_HOME": str(home), "MADOGUCHI_ENCODER": str(built_encoder()), **env}
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An empty knowledge home."""
    return make_settings(tmp_path / "home")


@pytest.fixture
def starter_settings(tmp_path: Path) -> Settings:
    """A knowledge home holding the published starter entries."""
    from knowledge.io import import_entries
    from knowledge.store import open_db

    settings = make_settings(tmp_path / "home")
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    return settings


@pytest.fixture(scope="session")
def shared_engine(tmp_path_factory):
    """One engine over the starter entries, for read-only tests (loading costs ~2 s)."""
    from assistant.engine import Engine
    from knowledge.io import import_entries
    from knowledge.store import open_db

    settings = make_settings(tmp_path_factory.mktemp("shared") / "home")
    db = open_db(settings.database_path)
    import_entries(db, STARTER, "yaml", publish=True)
    db.close()
    return Engine.load(settings)
