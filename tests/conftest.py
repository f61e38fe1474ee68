"""Session fixtures: the real data, and one real training run shared by every test."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from train.settings import RECIPES

ROOT = Path(__file__).resolve().parents[1]
# The session's training run is the default recipe in full: the model `python -m train` ships.
FIXTURE_EPOCHS = RECIPES["robust"]["epochs"]


@pytest.fixture(scope="session")
def signs_data() -> Path:
    """The SIGNS data from $SIGNS_DATA (CI: ../shared/signs). Missing data fails, never skips."""
    env = os.environ.get("SIGNS_DATA")
    if not env:
        pytest.fail("SIGNS_DATA is not set; run the tests as: SIGNS_DATA=../shared/signs pytest")
    path = Path(env).resolve()
    if not (path / "train_signs").is_dir() and not (path / "train_signs.h5").is_file():
        pytest.fail(f"SIGNS_DATA={env}: no SIGNS data there (train_signs/ or train_signs.h5)")
    return path


@pytest.fixture(scope="session")
def trained_dir(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the default training recipe (all artifacts), shared by the whole session.

    The full recipe, seed 1: the suite's model is the one `python -m train` makes (about two
    minutes here). It used to be shortened to 40 epochs while tf.data's end-of-fit stall
    (``train/core.py``) made every fit up to ~40 s longer.
    """
    from train import TrainSettings, run

    out = tmp_path_factory.mktemp("trained")
    run(TrainSettings(data=str(signs_data), out=str(out), verbose=0))
    return out


@pytest.fixture(scope="session")
def exported_dir(
    trained_dir: Path, signs_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """All six formats exported from ``trained_dir``'s model and validated once, with manifest.json.

    A format that fails its gate is still written and marked in the manifest; tests/test_export.py
    asserts that every one passed.
    """
    from export import ExportSettings, main_export
    from export.core import ExportFailed

    out = tmp_path_factory.mktemp("export")
    settings = ExportSettings(
        model=str(trained_dir / "model.keras"), data=str(signs_data), out=str(out), int8=True
    )
    with contextlib.suppress(ExportFailed):  # the manifest says which format failed
        main_export(settings)
    return out


@pytest.fixture(scope="session")
def palm_model() -> Path:
    """The palm detector, fetched as a user would (``python -m runtime.palm``'s code: pip
    downloads the mediapipe wheel from PyPI once; later sessions find the verified copy in
    ~/.cache/signs-edge). No network to PyPI fails, never skips."""
    from runtime.palm.fetch import fetch

    path, _ = fetch()
    return path


SLOW_FIXTURES = {"trained_dir", "exported_dir"}  # each costs a real training run (1-2 min)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the session's trained model `slow`, from its fixtures, so
    the fast tier (`pytest -m "not slow"`) can never start a training run by accident."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
