"""`python -m train --fine-tune DIR`: adapt a trained model to a user's own recorded samples.

The user's samples (``DIR/<label>/<image>``, any size, the layout ``runtime.webcam`` captures
into) are split per class into a training part and a held-out part. The base model is trained
further, with a lower learning rate and a short schedule, on the SIGNS training images plus the
user's training part repeated so that it is a fixed share of every epoch, with distillation from
the base model against forgetting (:mod:`train.preserve`); the epoch kept is the one with the
lowest loss on the user's held-out part and the SIGNS validation split together (never the SIGNS
test set). The SIGNS test accuracy before and after is the forgetting check.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.dataset import IMAGE_SUFFIXES, NUM_CLASSES, Split, load_dataset, read_image
from runtime.dataset import stratified_split as signs_split
from runtime.errors import DataError, SignsError
from runtime.fsutil import (
    atomic_path,
    ensure_writable_dir,
    file_sha256,
    removed_if_interrupted,
    write_json,
    write_text,
)
from runtime.preprocess import to_model_input
from train import calibrate, preserve
from train.model import plain_network
from train.settings import TrainSettings
from train.tfquiet import import_tensorflow

if TYPE_CHECKING:
    from runtime.manifest import Provenance

DEFAULT_OUT = Path("artifacts") / "fine-tuned"  # used when --out is left at python -m train's
MIN_SAMPLES = 3  # some class needs this many: one to hold out, two to learn from
MIN_BURSTS = 3  # a class held out by whole bursts needs this many (else by frames)
BURST_NAME = re.compile(r"(\d{8}-\d{6}(?:-\d+)?)_\d+")  # runtime.capture's <stamp>_<n>
FORGETTING_LIMIT_PP = 2.0  # SIGNS test points fine-tuning may lose before the summary warns


def load_samples(folder: str | Path) -> Split:
    """Read every sample in ``folder/<label>/`` (labels 0-5) through the shared preprocessing.

    Hidden files (a capture still being written is a dot-file) and non-image files are skipped,
    as ``runtime.dataset`` does.

    Raises:
        DataError: no such folder, a subfolder that is not a label 0-5, an image lying outside
            the class subfolders, or an image file that cannot be decoded.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder of samples (expected <label>/<image> subfolders, labels 0-5)"
        )
    files: list[Path] = []
    labels: list[int] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.suffix.lower() in IMAGE_SUFFIXES:
                raise DataError(f"{entry}: a sample must sit in its class subfolder <label>/ (0-5)")
            continue
        if not (entry.name.isdigit() and int(entry.name) < NUM_CLASSES):
            raise DataError(f"{entry}: label {entry.name!r} is outside 0-5 (class subfolders 0..5)")
        for f in sorted(entry.iterdir()):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(int(entry.name))
    if not files:
        raise DataError(f"{root}: no samples found (expected <label>/<image> subfolders 0-5)")
    x = np.stack([read_image(f) for f in files])  # DataError names an undecodable file
    return Split(x, np.asarray(labels, np.int64), [str(f.relative_to(root)) for f in files])


def check_counts(root: Path, y: np.ndarray) -> tuple[list[int], list[int]]:
    """Per-class counts and the classes with no sample.

    Raises:
        DataError: no class has ``MIN_SAMPLES`` samples (nothing to learn from and check on).
    """
    counts = np.bincount(y, minlength=NUM_CLASSES).tolist()
    if max(counts) < MIN_SAMPLES:
        shown = ", ".join(f"{c}: {n}" for c, n in enumerate(counts))
        raise DataError(
            f"{root}: too few samples ({shown}); record at least {MIN_SAMPLES} of a class "
            "(about 20 per class works best)"
        )
    return counts, [c for c, n in enumerate(counts) if n == 0]


def burst_of(name: str) -> str:
    """The burst a sample belongs to: ``<label>/<stamp>`` for a capture named
    ``<stamp>_<n>.jpg`` (``runtime.capture``: one stamp per burst), else the file itself."""
    path = Path(name)
    m = BURST_NAME.fullmatch(path.stem)
    return f"{path.parent.as_posix()}/{m.group(1)}" if m else path.as_posix()


def hold_out(
    y: np.ndarray, fraction: float, seed: int, groups: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class split of the user's samples: (train indices, held-out indices), both sorted.

    A class with n >= 2 samples holds out about round(fraction * n), at least 1 and at most
    n - 1, so every such class is both learned and checked; a single sample is only learned
    from. Frames of one burst are near-copies, so a held-out frame whose burst siblings are
    trained on would flatter the check: a class with at least ``MIN_BURSTS`` bursts (``groups``)
    holds out whole bursts, in seeded order, until it reaches its share.
    """
    rng = np.random.default_rng(seed)
    groups = groups if groups is not None else [str(i) for i in range(len(y))]
    held = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        n = len(idx)
        k = 0 if n < 2 else min(n - 1, max(1, int(np.floor(fraction * n + 0.5))))
        bursts = sorted({groups[i] for i in idx})
        if len(bursts) < MIN_BURSTS:
            held.append(rng.permutation(idx)[:k])
            continue
        taken: list[int] = []
        for b in rng.permutation(len(bursts))[:-1]:  # never every burst
            if len(taken) >= k:
                break
            taken += [i for i in idx if groups[i] == bursts[b]]
        held.append(np.asarray(taken, dtype=np.int64))
    mask = np.zeros(len(y), dtype=bool)
    mask[np.concatenate(held).astype(np.int64)] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def few_bursts(samples: Split) -> list[int]:
    """Classes recorded as captures (``<stamp>_<n>`` names) in fewer than MIN_BURSTS bursts."""
    found: dict[int, set[str]] = {}
    for name, label in zip(samples.names, samples.y.tolist(), strict=True):
        if BURST_NAME.fullmatch(Path(name).stem):
            found.setdefault(label, set()).add(burst_of(name))
    return sorted(c for c, b in found.items() if len(b) < MIN_BURSTS)


def repeats(n_signs: int, n_user: int, share: float) -> int:
    """How many copies of each user training sample make them ``share`` of an epoch."""
    return max(1, round(share / (1.0 - share) * n_signs / n_user))


def output_dir(settings: TrainSettings) -> Path:
    """``--out``, except that python -m train's default becomes artifacts/fine-tuned/."""
    return DEFAULT_OUT if settings.out == TrainSettings.out else Path(settings.out)


def run(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> dict:
    """Fine-tune ``settings.init`` on ``settings.fine_tune``; write the artifacts, return metrics.

    Args:
        settings: the samples, the base model, the output folder and the fine-tune recipe.
        callbacks: extra ``keras.callbacks.Callback`` objects for ``fit``.

    Raises:
        SignsError: bad samples, base model, data or output directory; every check runs before
            anything is written, and an ``out`` folder this call created is removed on failure.
    """
    with removed_if_interrupted(output_dir(settings)):
        return _run(settings, callbacks)


def _run(settings: TrainSettings, callbacks: Sequence[Any]) -> dict:
    t0 = time.perf_counter()  # the cost figure covers loading too: what the user waits for
    from export.keras_model import check_model_file, load_keras
    from train import core

    assert settings.fine_tune is not None
    init, out = Path(settings.init), output_dir(settings)
    check_model_file(init)
    if (out / "model.keras").resolve() == init.resolve():
        raise SignsError(f"--out {out} would overwrite the base model {init}; choose another")
    root = Path(settings.fine_tune)
    samples = load_samples(root)
    counts, missing = check_counts(root, samples.y)
    ds = load_dataset(settings.data, need_train=True)
    assert ds.train is not None and ds.test is not None
    model = load_keras(init)  # ModelError for a corrupt file or a wrong input/output shape
    out = ensure_writable_dir(out)

    print(f"data: {ds.describe()}")
    print(
        f"samples: {root} ({len(samples)}: "
        + ", ".join(f"{c}: {n}" for c, n in enumerate(counts))
        + ")"
    )
    if missing:
        print(
            f"warning: no samples of class {', '.join(map(str, missing))} in {root}; "
            "SIGNS training data still covers it, but the model is not adapted to your hand there",
            file=sys.stderr,
        )
    few = few_bursts(samples)
    if few:
        print(
            f"note: class {', '.join(map(str, few))} has fewer than {MIN_BURSTS} bursts, so its "
            "held-out frames are near-copies of trained ones and its held-out accuracy flatters; "
            f"record {MIN_BURSTS} or more bursts per class, each in another position or light"
        )
    import_tensorflow()  # before Keras: TensorFlow's start-up notices filtered
    import keras

    keras.utils.set_random_seed(settings.seed)
    # The base run's split (same seed): its validation images stay unseen here too.
    tr_idx, val_idx = signs_split(ds.train.y, settings.val_size, settings.seed)
    train, val, test = ds.train.subset(tr_idx), ds.train.subset(val_idx), ds.test
    u_tr_idx, u_val_idx = hold_out(
        samples.y, settings.fine_tune_holdout, settings.seed, [burst_of(n) for n in samples.names]
    )
    user_train, user_val = samples.subset(u_tr_idx), samples.subset(u_val_idx)
    k = repeats(len(train), len(user_train), settings.fine_tune_user_share)
    # The base recipe's augmentation, hand-free images included, so "no sign" survives.
    data, steps = core._training_data(
        train, settings.resolved(), settings.fine_tune_epochs, user_train, k
    )
    evals = {"user_val": user_val, "user_all": samples, "signs_test": test}
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])  # for evaluate
    before = {name: core._evaluate(model, s) for name, s in evals.items()}
    # The plain network is trained, as in python -m train; a mirror-averaged model shares its
    # layers, so it is what `model` predicts and saves afterwards.
    fitted = preserve.distilled(plain_network(model), settings.fine_tune_distill)
    fitted.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=settings.fine_tune_learning_rate,
            beta_1=settings.beta_1,
            beta_2=settings.beta_2,
        ),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    # The epoch kept has the lowest loss on held-out data, with Keras's own callback: the
    # user's held-out samples and the base run's SIGNS validation split, weighted half and half,
    # so the choice weighs adapting against forgetting (the SIGNS test set is never looked at).
    # Loss, not accuracy: a few dozen held-out samples tie on accuracy often.
    best = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        mode="min",
        patience=settings.fine_tune_epochs,
        restore_best_weights=True,
    )
    t_fit = time.perf_counter()
    history = fitted.fit(
        data,
        steps_per_epoch=steps,
        validation_data=_held_out(user_val, val),
        epochs=settings.fine_tune_epochs,
        shuffle=False,
        callbacks=[best, *callbacks],
        verbose=settings.verbose,
    )
    fit_seconds = time.perf_counter() - t_fit
    after = {name: core._evaluate(model, s) for name, s in evals.items()}
    change = (after["signs_test"]["accuracy"] - before["signs_test"]["accuracy"]) * 100.0
    metrics = {
        "params": model.count_params(),
        **{name: core._evaluate(model, s) for name, s in (("train", train), ("val", val))},
        "test": after["signs_test"],
        "best_epoch": best.best_epoch + 1,
        "epochs": settings.fine_tune_epochs,
        "fit_seconds": round(fit_seconds, 2),
        "fine_tune": {
            "before": before,
            "after": after,
            "signs_test_change_pp": round(change, 3),
            "forgetting_limit_pp": FORGETTING_LIMIT_PP,
            "forgot": change < -FORGETTING_LIMIT_PP - 1e-9,
            "user_train": len(user_train),
            "user_val": len(user_val),
            "repeats": k,
            "seconds": round(time.perf_counter() - t0, 2),
        },
    }
    metrics["min_confidence"] = _calibrate(model, settings, val, user_val)
    # The hand search's threshold on SIGNS val scenes only: the user's samples are whole photos
    # with their own background, not hands that can be placed on another.
    metrics["hand_search"] = calibrate.hand_search(model, val, settings.seed)
    config = core._config(settings, ds, train, val)
    config["fine_tune"] = {
        "base_model": str(init.resolve()),
        "base_sha256": file_sha256(init),
        "samples": str(root.resolve()),
        "counts": {str(c): n for c, n in enumerate(counts)},
        "missing_classes": missing,
        "held_out": user_val.names,
        "repeats": k,
    }
    test_probs = model.predict(to_model_input(test.x), verbose=0)
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    write_json(out / "config.json", config)
    write_json(
        out / "history.json", {key: [float(v) for v in vs] for key, vs in history.history.items()}
    )
    write_json(out / "metrics.json", metrics)
    write_text(out / "summary.txt", core._summary(model))
    if settings.plots:
        from train import plots

        plots.write_all(out, model, history.history, test, test_probs, ds.labels, settings)
    print(summary(metrics))
    print(calibrate.describe(metrics["min_confidence"], metrics["hand_search"]))
    print(f"wrote {out}/ (model.keras, metrics.json, config.json, history.json, summary.txt)")
    return metrics


def _calibrate(model, settings: TrainSettings, val: Split, user_val: Split) -> dict:
    """The runtime's "no sign" threshold for the fine-tuned model, as ``python -m train``
    calibrates it (:mod:`train.calibrate`), with the user's held-out samples among the hands."""
    seed, shifts = settings.seed, settings.resolved().val_shifts
    hand_x, hand_y = calibrate.shifted_validation(val.x, val.y, shifts, seed)
    return calibrate.calibrate_model(
        model,
        np.concatenate([hand_x, user_val.x]),
        np.concatenate([hand_y, user_val.y]),
        calibrate.empty_scenes(val.x, seed=seed),
        data="hands: SIGNS validation split, clean + shifted, and the user's held-out samples; "
        "empty: held-out background crops",
    )


def _held_out(user_val: Split, signs_val: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, one-hot y, weights) of both held-out sets; each set's weights sum to the same total."""
    x = np.concatenate([user_val.x, signs_val.x])
    y = np.concatenate([user_val.y, signs_val.y])
    w = np.concatenate(
        [np.full(len(user_val), 1 / len(user_val)), np.full(len(signs_val), 1 / len(signs_val))]
    )
    return to_model_input(x), np.eye(NUM_CLASSES, dtype=np.float32)[y], w * len(w) / 2


def summary(metrics: dict) -> str:
    """Before/after table, the cost, and a WARNING line when the SIGNS test lost too much."""
    ft = metrics["fine_tune"]
    rows = (("user held-out", "user_val"), ("user, all", "user_all"), ("SIGNS test", "signs_test"))
    lines = ["", f"{'':<14} {'n':>5} {'before':>8} {'after':>8}"]
    for title, key in rows:
        b, a = ft["before"][key], ft["after"][key]
        lines.append(f"{title:<14} {a['n']:>5} {b['accuracy']:>8.4f} {a['accuracy']:>8.4f}")
    lines.append(
        f"best epoch {metrics['best_epoch']}/{metrics['epochs']} "
        "(held-out loss: user + SIGNS validation); "
        f"{ft['user_train']} user samples x {ft['repeats']} beside "
        f"{metrics['train']['n']} SIGNS images; fit {metrics['fit_seconds']:.1f} s, "
        f"whole fine-tune {ft['seconds']:.1f} s"
    )
    if ft["forgot"]:
        lines.append(
            f"WARNING: fine-tuning lost {-ft['signs_test_change_pp']:.1f} points on the SIGNS test "
            f"(limit {ft['forgetting_limit_pp']:g}): the model forgot part of what it knew; "
            "record more varied samples, or raise --fine-tune-distill"
        )
    return "\n".join(lines)


def user_calibration(model_path: Path) -> tuple[Split | None, Provenance | None]:
    """The samples a fine-tuned model learned from, found through its config.json.

    Returns (samples, provenance): both None for a model that was not fine-tuned; samples None
    with provenance set when the folder has gone (the caller warns and calibrates without it).
    """
    from runtime.manifest import Provenance

    try:
        config = json.loads((model_path.parent / "config.json").read_text())
    except (OSError, ValueError):
        return None, None
    info = config.get("fine_tune") if isinstance(config, dict) else None
    if not isinstance(info, dict) or not info.get("samples"):
        return None, None
    provenance = Provenance(
        fine_tuned=True,
        base_model=info.get("base_model"),
        base_sha256=info.get("base_sha256"),
        samples=str(info["samples"]),
        counts=info.get("counts") or {},
    )
    try:
        return load_samples(info["samples"]), provenance
    except DataError:
        return None, provenance
