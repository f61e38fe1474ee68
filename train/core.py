"""`python -m train`: fit the seed CNN reproducibly and write every artifact atomically."""

from __future__ import annotations

import contextlib
import io
import platform
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from runtime.dataset import Dataset, Split, load_dataset, stratified_split
from runtime.errors import SettingError, SignsError
from runtime.fsutil import (
    atomic_path,
    ensure_writable_dir,
    removed_if_interrupted,
    write_json,
    write_text,
)
from runtime.preprocess import INPUT_SHAPE, NUM_CLASSES, PreprocessConfig, to_model_input
from runtime.tfquiet import import_tensorflow
from train.model import build_model
from train.settings import TrainSettings

EXPECTED_PARAMS = 82_102  # the notebook's architecture; a different count means a different model


def run(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> dict:
    """Train, evaluate and write all artifacts to ``settings.out``; return the metrics.

    An ``out`` folder this call created is removed again if it fails or is interrupted before
    writing anything into it.

    Args:
        settings: the recipe and the paths.
        callbacks: extra ``keras.callbacks.Callback`` objects for ``fit`` (e.g. epoch timers).

    Raises:
        SignsError: bad data, bad settings or an unwritable output directory (before anything
            is written).
    """
    with removed_if_interrupted(settings.out):
        return _run(settings, callbacks)


def _run(settings: TrainSettings, callbacks: Sequence[Any]) -> dict:
    ds = load_dataset(settings.data, need_train=True)
    assert ds.train is not None and ds.test is not None
    if not 0 <= settings.activation_index < len(ds.test):
        raise SettingError(
            "activation_index",
            settings.activation_index,
            f"is outside the test set (0..{len(ds.test) - 1})",
        )
    if settings.val_size >= len(ds.train):
        raise SignsError(
            f"{ds.root}: {len(ds.train)} training images cannot hold out {settings.val_size}"
        )
    out = ensure_writable_dir(settings.out)
    print(f"data: {ds.describe()}")

    import_tensorflow()  # before Keras: TensorFlow's start-up notices filtered
    import keras

    keras.utils.set_random_seed(settings.seed)
    tr_idx, val_idx = stratified_split(ds.train.y, settings.val_size, settings.seed)
    train, val, test = ds.train.subset(tr_idx), ds.train.subset(val_idx), ds.test

    model = build_model()
    params = model.count_params()
    if params != EXPECTED_PARAMS:
        raise AssertionError(f"model has {params} parameters, expected {EXPECTED_PARAMS}")
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=settings.learning_rate, beta_1=settings.beta_1, beta_2=settings.beta_2
        ),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    # Keep the weights of the epoch with the best validation accuracy (the test set is never
    # looked at): Keras's own EarlyStopping with a patience that never stops the run. On a tie
    # the earlier epoch is kept (the retired custom callback broke ties on lower val_loss).
    best = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=settings.epochs, restore_best_weights=True
    )
    t0 = time.perf_counter()
    history = model.fit(
        _training_data(train, settings),
        validation_data=(to_model_input(val.x), keras.utils.to_categorical(val.y, NUM_CLASSES)),
        epochs=settings.epochs,
        shuffle=False,  # the tf.data pipeline already reshuffles every epoch
        callbacks=[best, *callbacks],
        verbose=settings.verbose,
    )
    fit_seconds = time.perf_counter() - t0

    metrics = {
        "params": params,
        **{
            name: _evaluate(model, s)
            for name, s in (("train", train), ("val", val), ("test", test))
        },
        "best_epoch": best.best_epoch + 1,
        "epochs": settings.epochs,
        "fit_seconds": round(fit_seconds, 2),
    }
    test_probs = model.predict(to_model_input(test.x), verbose=0)

    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    write_json(out / "config.json", _config(settings, ds, train, val))
    write_json(
        out / "history.json", {k: [float(v) for v in vs] for k, vs in history.history.items()}
    )
    write_json(out / "metrics.json", metrics)
    write_text(out / "summary.txt", _summary(model))
    if settings.plots:
        from train import plots

        plots.write_all(out, model, history.history, test, test_probs, ds.labels, settings)
    _print_table(metrics)
    print(
        f"wrote {out}/ (model.keras, metrics.json, config.json, history.json, summary.txt, plots)"
    )
    return metrics


def _training_data(train: Split, settings: TrainSettings):
    """Shuffled, batched tf.data pipeline, with label-preserving augmentation if enabled.

    A mirrored hand shows the same number of fingers, and a hand a few pixels off-centre is
    still the same sign, so flips and small shifts add data without changing labels. They are
    applied in the input pipeline only; the saved model is exactly the notebook's network.
    """
    import keras
    import tensorflow as tf

    x = to_model_input(train.x)
    y = keras.utils.to_categorical(train.y, NUM_CLASSES)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
        len(x), seed=settings.seed, reshuffle_each_iteration=True
    )
    ds = ds.batch(settings.batch_size)
    if settings.augment:
        augment = keras.Sequential(
            [
                keras.layers.RandomFlip("horizontal", seed=settings.seed),
                keras.layers.RandomTranslation(
                    settings.shift, settings.shift, fill_mode="nearest", seed=settings.seed
                ),
            ]
        )
        ds = ds.map(lambda xb, yb: (augment(xb, training=True), yb))
    return ds.prefetch(2)


def _evaluate(model, split: Split) -> dict:
    import keras

    loss, acc = model.evaluate(
        to_model_input(split.x),
        keras.utils.to_categorical(split.y, NUM_CLASSES),
        verbose=0,
        batch_size=256,
    )
    return {"loss": round(float(loss), 6), "accuracy": round(float(acc), 6), "n": len(split)}


def _config(settings: TrainSettings, ds: Dataset, train: Split, val: Split) -> dict:
    import keras
    import tensorflow as tf

    return {
        "settings": settings.to_dict(),
        "data": {
            "path": str(ds.root.resolve()),
            "layout": ds.layout,
            "train": len(train),
            "val": len(val),
            "test": len(ds.test) if ds.test is not None else 0,
            "split": "stratified by class",
            "split_seed": settings.seed,
            "val_names": val.names,
        },
        "labels": ds.labels,
        "preprocessing": PreprocessConfig().to_dict(),
        "input_shape": list(INPUT_SHAPE),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }


def _summary(model) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        model.summary(line_length=90)
    lines = [buf.getvalue().rstrip(), "", "Parameters per layer (weights + biases):"]
    total = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = (w.shape for w in layer.weights)
        n = int(np.prod(kernel)) + int(np.prod(bias))
        total += n
        if len(kernel) == 4:  # Conv2D: (kh, kw, in, out)
            kh, kw, cin, cout = kernel
            formula = f"({kh}*{kw}*{cin} + 1) * {cout}"
        else:  # Dense: (in, out)
            cin, cout = kernel
            formula = f"({cin} + 1) * {cout}"
        lines.append(f"  {layer.name:<8} {formula:<22} = {n:>6}")
    lines.append(f"  {'total':<8} {'':<22} = {total:>6}")
    return "\n".join(lines) + "\n"


def _print_table(metrics: dict) -> None:
    print()
    print(f"{'split':<6} {'n':>5} {'loss':>8} {'accuracy':>9}")
    for name in ("train", "val", "test"):
        m = metrics[name]
        print(f"{name:<6} {m['n']:>5} {m['loss']:>8.4f} {m['accuracy']:>9.4f}")
    print(
        f"best epoch {metrics['best_epoch']}/{metrics['epochs']} (validation accuracy), "
        f"fit {metrics['fit_seconds']:.1f} s, {metrics['params']:,} parameters"
    )
