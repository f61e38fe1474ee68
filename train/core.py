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
from train import calibrate
from train.model import build_model, mirror_averaged
from train.settings import TrainSettings
from train.tfquiet import import_tensorflow

EXPECTED_PARAMS = 82_102  # the notebook's architecture; a different count means a different model


def run(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> dict:
    """Train, evaluate and write all artifacts to ``settings.out``; return the metrics.

    An ``out`` folder this call created is removed again if it fails or is interrupted before
    writing anything into it.

    Args:
        settings: the recipe and the paths (unset recipe fields take the recipe's values).
        callbacks: extra ``keras.callbacks.Callback`` objects for ``fit`` (e.g. epoch timers).

    Raises:
        SignsError: bad data, bad settings or an unwritable output directory (before anything
            is written).
    """
    with removed_if_interrupted(settings.out):
        return _run(settings.resolved(), callbacks)


def _run(s: TrainSettings, callbacks: Sequence[Any]) -> dict:
    ds = load_dataset(s.data, need_train=True)
    assert ds.train is not None and ds.test is not None
    if not 0 <= s.activation_index < len(ds.test):
        raise SettingError(
            "activation_index",
            s.activation_index,
            f"is outside the test set (0..{len(ds.test) - 1})",
        )
    if s.val_size >= len(ds.train):
        raise SignsError(f"{ds.root}: {len(ds.train)} training images cannot hold out {s.val_size}")
    out = ensure_writable_dir(s.out)
    print(f"data: {ds.describe()}  recipe: {s.recipe}")

    import_tensorflow()  # before Keras: TensorFlow's start-up notices filtered
    import keras

    keras.utils.set_random_seed(s.seed)
    tr_idx, val_idx = stratified_split(ds.train.y, s.val_size, s.seed)
    train, val, test = ds.train.subset(tr_idx), ds.train.subset(val_idx), ds.test

    model = build_model(init=s.weight_init)
    params = model.count_params()
    if params != EXPECTED_PARAMS:
        raise AssertionError(f"model has {params} parameters, expected {EXPECTED_PARAMS}")
    t_prep = time.perf_counter()
    data, steps = _training_data(train, s, s.epochs)
    val_x, val_y = calibrate.shifted_validation(val.x, val.y, s.val_shifts, s.seed)
    prep_seconds = time.perf_counter() - t_prep
    lr = s.learning_rate
    if s.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(s.learning_rate, s.epochs * steps)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=s.label_smoothing)
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=lr, beta_1=s.beta_1, beta_2=s.beta_2, use_ema=s.ema
        ),
        loss=loss,
        metrics=["accuracy"],
    )
    # Keep the weights of the epoch with the best (shifted) validation accuracy; the test set is
    # never looked at. Keras's own EarlyStopping with a patience that never stops the run; on a
    # tie the earlier epoch is kept. With EMA, fit ends by writing the averaged weights instead.
    best = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=s.epochs, restore_best_weights=True
    )
    t0 = time.perf_counter()
    history = model.fit(
        data,
        steps_per_epoch=steps,
        validation_data=(to_model_input(val_x), keras.utils.to_categorical(val_y, NUM_CLASSES)),
        epochs=s.epochs,
        shuffle=False,  # the tf.data pipeline already reshuffles every epoch
        callbacks=[*([] if s.ema else [best]), *callbacks],
        verbose=s.verbose,
    )
    fit_seconds = time.perf_counter() - t0
    if s.mirror_average:
        # After the checkpoint choice: the plain network is what fit trained and chose.
        model = mirror_averaged(model, s.turn_average)
        model.compile(loss=loss, metrics=["accuracy"])  # for evaluate: the same loss

    metrics = {
        "params": params,
        **{
            name: _evaluate(model, split)
            for name, split in (("train", train), ("val", val), ("test", test))
        },
        "val_shifted": _evaluate_xy(model, val_x, val_y),
        "best_epoch": s.epochs if s.ema else best.best_epoch + 1,
        "epochs": s.epochs,
        "fit_seconds": round(fit_seconds, 2),
        "prep_seconds": round(prep_seconds, 2),
    }
    empty = calibrate.empty_scenes(val.x, seed=s.seed)
    metrics["min_confidence"] = calibrate.calibrate_model(model, val_x, val_y, empty)
    metrics["hand_search"] = calibrate.hand_search(model, val, s.seed)
    test_probs = model.predict(to_model_input(test.x), verbose=0)
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    write_json(out / "config.json", _config(s, ds, train, val))
    write_json(
        out / "history.json", {k: [float(v) for v in vs] for k, vs in history.history.items()}
    )
    write_json(out / "metrics.json", metrics)
    write_text(out / "summary.txt", _summary(model))
    if s.plots:
        from train import plots

        plots.write_all(out, model, history.history, test, test_probs, ds.labels, s)
    _print_table(metrics)
    print(
        f"wrote {out}/ (model.keras, metrics.json, config.json, history.json, summary.txt"
        + (", plots)" if s.plots else ")")
    )
    return metrics


def _training_data(
    train: Split, s: TrainSettings, epochs: int, user: Split | None = None, repeats: int = 1
):
    """The training pipeline for ``epochs`` epochs, and its steps per epoch.

    The notebook recipe feeds the plain images; every other recipe goes through
    :func:`train.augment.training_dataset` (augmentation, background replacement and outlier
    exposure as the settings ask). A fine-tune adds the ``user``'s samples, ``repeats`` times
    each, with all-ones masks: their backgrounds are the user's own and are never replaced. The
    saved model is exactly the notebook's network either way.
    """
    import keras
    import tensorflow as tf

    x, y = train.x, train.y
    if user is not None:
        x = np.concatenate([x, np.repeat(user.x, repeats, axis=0)])
        y = np.concatenate([y, np.repeat(user.y, repeats)])
    if not s.augment:
        data = tf.data.Dataset.from_tensor_slices(
            (to_model_input(x), keras.utils.to_categorical(y, NUM_CLASSES))
        ).shuffle(len(x), seed=s.seed, reshuffle_each_iteration=True)
        data = data.batch(s.batch_size).repeat().prefetch(2)
        return _without_autotune(data), -(-len(x) // s.batch_size)
    from train import augment
    from train import backgrounds as bg

    if s.background_p > 0 or s.outliers > 0:
        masks = bg.hand_masks(train.x, cache=True)  # SIGNS walls: the same masks as the base run
        bank = bg.backgrounds(s.background_bank, seed=s.seed, split="train", walls=(train.x, masks))
    else:
        masks = np.ones(train.x.shape[:3], np.uint8)
        bank = np.zeros((1, *INPUT_SHAPE), np.uint8)
    masks = np.concatenate([masks, np.ones((len(x) - len(masks), *masks.shape[1:]), np.uint8)])
    data, steps = augment.training_dataset(x, y, masks, bank, s, epochs)
    return _without_autotune(data), steps


def _without_autotune(data):
    """``data`` with tf.data's autotuning off.

    With it on, the end of ``fit`` often stalled for up to ~40 s with both cores idle: py-spy
    showed the main thread in the dataset iterator's destructor
    (``RootDataset::Iterator::~Iterator``), waiting for a tf.data thread to finish. Fine-tunes
    of identical settings took 85 s or 43 s to fit; with autotuning off, 45-48 s every time
    and the same weights (the batches are seeded by step, not by thread timing). AUTOTUNE
    parallelism then means one call per core, which is what this pipeline needs.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return data.with_options(options)


def _evaluate(model, split: Split) -> dict:
    return _evaluate_xy(model, split.x, split.y)


def _evaluate_xy(model, x: np.ndarray, y: np.ndarray) -> dict:
    import keras

    loss, acc = model.evaluate(
        to_model_input(x), keras.utils.to_categorical(y, NUM_CLASSES), verbose=0, batch_size=256
    )
    return {"loss": round(float(loss), 6), "accuracy": round(float(acc), 6), "n": len(x)}


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
    print(f"{'split':<11} {'n':>5} {'loss':>8} {'accuracy':>9}")
    for name in ("train", "val", "val_shifted", "test"):
        m = metrics[name]
        print(f"{name:<11} {m['n']:>5} {m['loss']:>8.4f} {m['accuracy']:>9.4f}")
    print(
        f"best epoch {metrics['best_epoch']}/{metrics['epochs']} (validation accuracy), "
        f"fit {metrics['fit_seconds']:.1f} s, {metrics['params']:,} parameters"
    )
    print(calibrate.describe(metrics["min_confidence"], metrics["hand_search"]))
