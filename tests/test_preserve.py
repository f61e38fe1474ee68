"""The fine-tune's distillation against forgetting (train/preserve.py), checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest


def _tiny(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))


@pytest.mark.parametrize("distill", [0.0, 2.0])
def test_training_loss_is_label_loss_plus_distillation(distill: float) -> None:
    from train.preserve import distilled
    from train.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    model = _tiny(0)
    base = [w.copy() for w in model.get_weights()]
    wrapped = distilled(model, distill)
    wrapped.compile(optimizer="sgd", loss="categorical_crossentropy")
    # The weights move away from the base; the teacher (the base model) must not follow.
    moved = [w + 0.3 for w in base]
    model.set_weights(moved)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    p = model.predict(x, verbose=0)
    t = _tiny(1)
    t.set_weights(base)
    q = t.predict(x, verbose=0)

    eps = keras.config.epsilon()
    label = -np.mean(np.sum(y * np.log(np.clip(p, eps, 1 - eps)), axis=1))
    right = q.argmax(1) == y.argmax(1)
    kl = np.sum(q * (np.log(q + eps) - np.log(p + eps)), axis=1)
    want = label + distill * np.mean(right * kl)
    got = float(wrapped.compute_loss(x, y, wrapped(x), training=True))
    assert got == pytest.approx(want, rel=1e-4)
    # Held-out loss (the epoch choice) is the label loss alone.
    assert float(wrapped.compute_loss(x, y, wrapped(x), training=False)) == pytest.approx(
        label, rel=1e-4
    )
    assert 0 < right.sum() < len(right) or distill == 0  # the mask is really exercised


def test_fit_moves_the_wrapped_model_itself() -> None:
    from train.preserve import distilled
    from train.tfquiet import import_tensorflow

    import_tensorflow()
    model = _tiny(0)
    before = [w.copy() for w in model.get_weights()]
    wrapped = distilled(model, 1.0)
    wrapped.compile(optimizer="sgd", loss="categorical_crossentropy")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    wrapped.fit(x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)], epochs=2, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert len(model.layers) == 2  # the plain network: nothing of the wrapper is inside
