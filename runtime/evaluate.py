"""``python -m runtime.evaluate``: accuracy and confusion matrix of an exported model, on device.

Reads any layout :mod:`runtime.dataset` reads (the notebook's HDF5 files, the CS230 JPEG folders,
class subfolders with images of any size), through the shared preprocessing, and runs the model
on the same backend the webcam uses. It evaluates the test split when the data has one, else the
only split there is. ``--json`` adds one JSON line, last:
``{"accuracy", "n", "confusion", "per_class"}`` (confusion rows are true classes, columns
predicted; per_class is the recall of each class, null for a class with no images).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.cli import opt, run_command
from runtime.errors import SettingError

BATCH = 64  # images per predict call: bounded memory on a Pi, fast enough everywhere


@dataclass
class EvaluateSettings:
    model: str = opt(metavar="FILE", help=".tflite or .onnx model file")
    data: str | None = opt(
        None,
        help="dataset: HDF5 file(s), CS230 folders or class subfolders; when omitted, "
        "$SIGNS_DATA, else ./data",
    )
    json: bool = opt(False, help="print one JSON line last")
    threads: int | None = opt(None, help="inference threads; when omitted, the library decides")

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise SettingError("threads", self.threads, "must be at least 1")


@dataclass
class EvaluateResult:
    accuracy: float
    n: int
    confusion: np.ndarray  # (6, 6) int64, rows true, columns predicted
    per_class: list[float | None]  # recall per class; None where the class has no images
    labels: list[str]
    predictions: np.ndarray  # (n,) int64, in the split's order
    names: list[str]  # image names, same order

    def to_json(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "confusion": self.confusion.tolist(),
            "per_class": self.per_class,
        }


def evaluate(settings: EvaluateSettings) -> EvaluateResult:
    """Load the model and the data, predict every image, count.

    Raises:
        ModelError: missing, truncated or wrong-shape model.
        DataError: no usable data at ``settings.data``.
    """
    from runtime.backends import load_backend
    from runtime.dataset import load_dataset
    from runtime.modelinfo import describe_model

    info = describe_model(settings.model)
    for w in info.warnings:
        print(f"warning: {w}", file=sys.stderr)
    backend = load_backend(settings.model, threads=settings.threads)
    ds = load_dataset(settings.data)
    split = ds.evaluation_split()
    probs = np.concatenate(
        [backend.predict(split.x[i : i + BATCH]) for i in range(0, len(split), BATCH)]
    )
    pred = probs.argmax(axis=1).astype(np.int64)
    k = len(info.labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (split.y, pred), 1)
    support = confusion.sum(axis=1)
    per_class = [float(confusion[c, c] / support[c]) if support[c] else None for c in range(k)]
    return EvaluateResult(
        accuracy=float((pred == split.y).mean()),
        n=len(split),
        confusion=confusion,
        per_class=per_class,
        labels=info.labels,
        predictions=pred,
        names=list(split.names),
    )


def run(settings: EvaluateSettings) -> EvaluateResult:
    """Evaluate and print the report (and the JSON line with ``settings.json``)."""
    result = evaluate(settings)
    print(f"model: {Path(settings.model)}")
    print(format_report(result))
    if settings.json:
        print(json.dumps(result.to_json()))
    sys.stdout.flush()
    return result


def format_report(r: EvaluateResult) -> str:
    """Accuracy line, then the confusion matrix with per-class accuracy as a last column."""
    labels = r.labels
    width = max(6, *(len(lb) for lb in labels))
    lines = [
        f"accuracy {r.accuracy:.4f} ({int(np.trace(r.confusion))}/{r.n})",
        "confusion (rows: true class, columns: predicted)",
        f"{'true':<{width}} "
        + " ".join(f"{lb:>{width}}" for lb in labels)
        + f" {'n':>5} {'acc':>6}",
    ]
    for c, lb in enumerate(labels):
        acc = r.per_class[c]
        cells = " ".join(f"{v:>{width}d}" for v in r.confusion[c])
        acc_s = f"{acc:.3f}" if acc is not None else "n/a"
        lines.append(f"{lb:<{width}} {cells} {int(r.confusion[c].sum()):>5} {acc_s:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    run_command(
        EvaluateSettings,
        run,
        argv,
        prog="python -m runtime.evaluate",
        description="Accuracy and confusion matrix of an exported .tflite/.onnx model.",
    )


if __name__ == "__main__":
    main()
