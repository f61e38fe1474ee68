"""The min-confidence rule: the lowest threshold from the runtime default up that meets the
"no sign" target on held-out empty scenes (train/calibrate.py)."""

from __future__ import annotations

import numpy as np

from runtime.pipeline import DEFAULT_MIN_CONFIDENCE
from train.calibrate import NO_SIGN_TARGET, choose_min_confidence


def _probs(tops: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows whose top probability is ``tops`` on class ``labels``, the rest spread evenly."""
    p = np.repeat(((1 - tops) / 5)[:, None], 6, axis=1)
    p[np.arange(len(tops)), labels] = tops
    return p


def test_never_below_the_runtime_default() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 200)
    hands = _probs(rng.uniform(0.6, 1.0, 200), y)
    empty = _probs(np.full(100, 0.25), np.zeros(100, int))  # unsure: 0.30 would already do
    result = choose_min_confidence(hands, y, empty)
    assert result["chosen"]["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    assert result["floor"] == DEFAULT_MIN_CONFIDENCE
    assert result["table"][0]["min_confidence"] < DEFAULT_MIN_CONFIDENCE  # still reported
    assert result["table"][0]["empty_no_sign"] >= NO_SIGN_TARGET


def test_raised_for_a_model_sure_of_empty_scenes() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 200)
    hands = _probs(rng.uniform(0.8, 1.0, 200), y)
    empty = _probs(rng.uniform(0.3, 0.68, 100), np.zeros(100, int))
    chosen = choose_min_confidence(hands, y, empty)["chosen"]
    assert chosen["min_confidence"] == 0.7  # the first step of 0.05 above every empty top
    assert chosen["empty_no_sign"] == 1.0 and chosen["hands_correct_shown"] == 1.0
