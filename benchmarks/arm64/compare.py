"""Native vs emulated arm64: what must match, with named tolerances, and how it is reported.

Labels (per image, per frame, and the user commands' accuracy and confusion matrix) must be
identical. Probabilities may differ only by a named tolerance:

- float outputs: ``Arm64Settings.float_atol`` (1e-5 by default); NEON and AVX-512 kernels sum in
  different orders, which moves float32 probabilities by ~1e-7 to 3e-6 (measured);
- int8 compute behind float outputs (tflite-dynamic, onnx-int8): ``int8_steps`` steps of an
  8-bit probability (1/255); run-time activation quantization may round differently per
  architecture (measured: up to 3.3e-5 on the emulated Cortex-A76);
- int8 outputs: ``Arm64Settings.int8_steps`` quantization steps (1 by default). With the
  plain 60-epoch model every int8 output was bit-identical on both emulated CPUs; with a less
  trained one (10 epochs), 2 of 120 images and 1 of 300 frames came out one step (1/256) apart
  on the Cortex-A72: XNNPACK's int8 kernels for Arm and for x86 round requantization
  differently in rare cases. A six-view model (``python -m train --turn-average 15``) adds a
  quantized Gather, multiply, sum and a six-way average, each a place to round: its onnx-int8
  file moved by 2 steps on 71 of 300 frames, its tflite-int8 by 1 step on 5 of 420 outputs,
  with identical labels; check it with ``--int8-steps 2``. The summary line counts such
  outputs and only says "identical" when there are none.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.manifest import ModelEntry

if TYPE_CHECKING:
    from benchmarks.arm64.settings import Arm64Settings

# One step of a probability stored in 8 bits: its range [0, 1] over 255 steps (a quantizer may
# choose a slightly finer scale, never a coarser one for that range).
PROBABILITY_STEP = 1 / 255
# Float32 rounding of two dequantized probabilities (q - zero_point) * scale: with a scale that
# is not a power of two (1/255 for the six-view model's output) one step apart comes out a few
# 1e-8 more than one scale. Any real extra step is 0.004, far above it.
DEQUANTIZED_SLACK = 1e-6

EVALUATE_KEYS = ("accuracy", "n", "confusion", "per_class")  # runtime.evaluate --json fields


@dataclass
class Check:
    """One native-vs-emulated comparison of per-item outputs (images or frames)."""

    what: str  # e.g. "tflite-int8.tflite images"
    total: int  # items compared
    differing: int = 0  # items whose outputs are not bit-identical
    max_diff: float = 0.0  # max |native - emulated| over all outputs
    tolerance: float = 0.0  # allowed max_diff
    label_diffs: list[str] = field(default_factory=list)  # "item: native label vs emulated"
    problem: str | None = None  # anything else that does not match (counts, columns, ...)
    same_word: str = "bit-identical"  # how describe() says "no difference at all"
    kind: str = "exact"  # "int8" / "float" probabilities, or "exact" (inputs, labels, results)
    step: float = 0.0  # quantization step of an int8 output
    first: str = ""  # name of the first item that is not bit-identical

    @property
    def identical(self) -> bool:
        return self.ok and self.differing == 0

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.label_diffs and self.max_diff <= self.tolerance

    def describe(self) -> str:
        """``images: 2/120 differ by up to 1 step(s)`` / ``frames bit-identical`` / a problem."""
        step = self.step
        if self.problem:
            return f"{self.what}: {self.problem}"
        if self.label_diffs:
            return (
                f"{self.what}: {len(self.label_diffs)}/{self.total} labels differ "
                f"(first: {self.label_diffs[0]})"
            )
        if self.differing == 0:
            return f"{self.what} {self.same_word}"
        if step:
            size = f"by up to {self.max_diff / step:.0f} step(s) of {step:.3g}"
        else:
            size = f"by up to {self.max_diff:.2g}"
        verdict = (
            "" if self.max_diff <= self.tolerance else f", over tolerance {self.tolerance:.2g}"
        )
        first = f" (first: {self.first})" if self.first else ""
        return f"{self.what}: {self.differing}/{self.total} differ {size}{verdict}{first}"


def _label_diffs(native, emulated, names: list[str]) -> list[str]:
    return [
        f"{names[i] if i < len(names) else i}: {a} vs {b}"
        for i, (a, b) in enumerate(zip(native, emulated, strict=True))
        if a != b
    ]


def compare_probs(
    what: str,
    native: np.ndarray,
    emulated: np.ndarray,
    names: list[str],
    tolerance: float,
    native_labels: list | None = None,
    emulated_labels: list | None = None,
) -> Check:
    """Compare (N, 6) probabilities; labels are the argmax unless given (the pipeline's)."""
    check = Check(what, total=len(native), tolerance=tolerance)
    if native.shape != emulated.shape:
        check.problem = f"shapes differ: native {native.shape}, emulated {emulated.shape}"
        return check
    diff = np.abs(native.astype(np.float64) - emulated.astype(np.float64)).reshape(len(native), -1)
    rows = np.flatnonzero(diff.max(axis=1) > 0) if len(diff) else np.array([], dtype=int)
    check.differing = len(rows)
    if len(rows):
        check.first = names[rows[0]] if rows[0] < len(names) else str(rows[0])
    check.max_diff = float(diff.max()) if diff.size else 0.0
    if native_labels is None or emulated_labels is None:
        native_labels = native.argmax(axis=1).tolist()
        emulated_labels = emulated.argmax(axis=1).tolist()
    check.label_diffs = _label_diffs(native_labels, emulated_labels, names)
    return check


def compare_inputs(what: str, native: np.ndarray, emulated: np.ndarray, names: list[str]) -> Check:
    """Decoded + preprocessed uint8 inputs: must be bit-identical."""
    check = Check(what, total=len(native))
    if native.shape != emulated.shape:
        check.problem = f"shapes differ: native {native.shape}, emulated {emulated.shape}"
        return check
    per_item = np.any(native != emulated, axis=tuple(range(1, native.ndim)))
    check.differing = int(per_item.sum())
    if check.differing:
        first = int(np.flatnonzero(per_item)[0])
        grey = int(np.abs(native.astype(np.int16) - emulated).max())
        name = names[first] if first < len(names) else first
        check.problem = (
            f"{check.differing}/{check.total} decode or preprocess differently "
            f"(first: {name}, up to {grey} grey levels)"
        )
    return check


def compare_digests(what: str, native: list[str], emulated: list[str]) -> Check:
    check = Check(what, total=len(native), same_word="identical")
    if len(native) != len(emulated):
        check.problem = f"native decoded {len(native)} frames, emulated {len(emulated)}"
        return check
    bad = [i for i, (a, b) in enumerate(zip(native, emulated, strict=True)) if a != b]
    check.differing = len(bad)
    if bad:
        check.problem = (
            f"{len(bad)}/{len(native)} frames decode differently (first: frame {bad[0]})"
        )
    return check


def read_evaluate_json(stdout: str) -> dict:
    """The last line of ``runtime.evaluate --json`` output, restricted to :data:`EVALUATE_KEYS`."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("no output")
    data = json.loads(lines[-1])
    missing = [k for k in EVALUATE_KEYS if k not in data]
    if missing:
        raise ValueError(f"JSON line lacks {', '.join(missing)}")
    return {k: data[k] for k in EVALUATE_KEYS}


def compare_evaluate(what: str, native: dict, emulated: dict) -> Check:
    """runtime.evaluate results: accuracy, count, confusion matrix and per-class figures."""
    check = Check(what, total=int(native.get("n", 0)), same_word="identical")
    differing = [k for k in EVALUATE_KEYS if native.get(k) != emulated.get(k)]
    if differing:
        k = differing[0]
        check.problem = f"{', '.join(differing)} differ ({k}: {native[k]} vs {emulated[k]})"
    return check


def read_log(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(frame ids, labels, confidences) from a ``runtime.webcam --log`` CSV."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for col in ("frame", "label", "confidence"):
        if rows and col not in rows[0]:
            raise ValueError(f"{path}: no {col!r} column")
    return (
        [r["frame"] for r in rows],
        [r["label"] for r in rows],
        np.array([float(r["confidence"]) for r in rows], dtype=np.float64),
    )


def compare_logs(what: str, native: Path, emulated: Path, tolerance: float) -> Check:
    """Two webcam logs: same frames, same label per frame, confidences within ``tolerance``."""
    n_frames, n_labels, n_conf = read_log(native)
    e_frames, e_labels, e_conf = read_log(emulated)
    check = Check(what, total=len(n_frames), tolerance=tolerance)
    if n_frames != e_frames:
        check.problem = f"native logged {len(n_frames)} frames, emulated {len(e_frames)}"
        return check
    names = [f"frame {f}" for f in n_frames]
    check.label_diffs = _label_diffs(n_labels, e_labels, names)
    diff = np.abs(n_conf - e_conf)
    check.differing = int(np.count_nonzero(diff))
    check.max_diff = float(diff.max()) if diff.size else 0.0
    return check


FIND_HAND = "--find-hand"  # the kind of the palm-finder webcam run's check


def verdict(checks: list[Check], tolerances: dict[str, float]) -> str:
    """The summary's verdict for checks that all passed.

    "identical" is what the project promises: the same labels, accuracy and confusion matrices
    everywhere, bit-identical int8 outputs, and other outputs within their named tolerances
    (``tolerances``: kind -> tolerance, for "quantized", "float" and :data:`FIND_HAND`). When an
    int8 output moved by an allowed step, or the palm finder's confidences moved (its detector is
    a float model), the verdict says "identical labels".
    """
    parts = []
    int8 = [c for c in checks if c.kind.startswith("int8")]
    if int8:
        moved = sum(c.differing for c in int8 if c.kind == "int8")
        total = sum(c.total for c in int8 if c.kind == "int8")
        steps = max(round(c.max_diff / c.step) for c in int8 if c.step)
        parts.append(
            "int8 bit-identical"
            if all(c.identical for c in int8)
            else f"int8: {moved} of {total} outputs up to {steps} step(s) apart"
        )
    for kind in ("quantized", "float"):
        group = [c for c in checks if c.kind.startswith(kind)]
        if group:
            worst = max(c.max_diff for c in group)
            parts.append(f"{kind} max |diff| {worst:.2g} <= {tolerances[kind]:.2g}")
    palm = [c for c in checks if c.kind == FIND_HAND]
    if palm:
        worst = max(c.max_diff for c in palm)
        parts.append(
            f"{FIND_HAND} confidence max |diff| {worst:.2g} <= {tolerances[FIND_HAND]:.2g}"
        )
    detail = f" ({', '.join(parts)})" if parts else ""
    if all(c.identical for c in int8) and all(c.differing == 0 for c in palm):
        return f"identical{detail}"
    return f"identical labels{detail}"


def tolerance(
    entry: ModelEntry | None, info: dict, settings: Arm64Settings
) -> tuple[str, float, float]:
    """(kind, tolerance, quantization step) of a model, from its probe record.

    - "int8": integer output tensor; ``int8_steps`` steps of its output scale;
    - "quantized": int8 compute behind float input and output (tflite-dynamic quantizes
      activations at run time, onnx-int8 is QDQ); ``int8_steps`` steps of an 8-bit probability
      (1/255). Kernels may round an activation's run-time quantization differently per
      architecture (measured: up to 3.3e-5 on the emulated Cortex-A76, 6e-7 on the A72);
    - "float": float32 or float16 weights; ``float_atol``.
    """
    out = info["output"]
    if out["dtype"] in ("int8", "uint8") and out["scale"]:
        step = float(out["scale"])
        return "int8", settings.int8_steps * step + DEQUANTIZED_SLACK, step
    if entry is not None and entry.quantization.quantized:
        return "quantized", settings.int8_steps * PROBABILITY_STEP + DEQUANTIZED_SLACK, 0.0
    return "float", settings.float_atol, 0.0
