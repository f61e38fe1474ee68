"""`python -m benchmarks.robustness`: accuracy under controlled shifts, other hands, empty scenes.

The image sets are built once (seeded) and every model scores the very same pixels: the Keras
model through Keras, every exported file through :mod:`runtime.backends` (the camera's code),
all after :func:`runtime.preprocess.preprocess` (the datasets are read through it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks.robustness.settings import RobustnessSettings
from benchmarks.robustness.shifts import SHIFTS, apply_shift
from runtime.dataset import load_dataset
from runtime.errors import ModelError, SignsError
from runtime.fsutil import ensure_writable_dir, write_json, write_text
from runtime.manifest import MANIFEST_NAME, NoSign, read_manifest
from runtime.modelinfo import describe_model
from train import backgrounds as bg

EMPTY_KINDS = ("photo", "wall", "texture", "noise")  # hand-free scene kinds, 150 each


def build_sets(s: RobustnessSettings) -> dict:
    """Every image set the report scores: {name: (images uint8, labels or None, group)}."""
    ds = load_dataset(s.data)
    test = ds.evaluation_split()
    masks = bg.hand_masks(test.x, cache=True)
    sets: dict[str, tuple[np.ndarray, np.ndarray | None, str]] = {
        "clean": (test.x, test.y, "clean")
    }
    for spec in SHIFTS:
        for level in range(1, len(spec.severities) + 1):
            x = apply_shift(test.x, spec.name, level, s.seed, masks)
            sets[f"{spec.name}:{level}"] = (x, test.y, "shift")
    hands = _other_hands(s.other_hands)
    if hands is not None:
        sets["other-hands"] = (hands.x, hands.y, "real")
    rng = np.random.default_rng([s.seed, 13])
    n = s.empty_per_kind
    photos = bg.natural_images("test")
    empty = {
        "photo": np.stack([bg.natural_crop(photos, rng) for _ in range(n)]),
        "wall": np.stack([bg.wall_patch(test.x, masks, rng) for _ in range(n)]),
        "texture": np.stack(
            [
                bg.synthetic_texture(
                    rng,
                    str(rng.choice(["solid", "gradient", "radial", "blobs", "stripes", "checker"])),
                )
                for _ in range(n)
            ]  # fmt: skip
        ),
        "noise": np.stack([bg.synthetic_texture(rng, "noise") for _ in range(n)]),
    }
    for kind in EMPTY_KINDS:
        sets[f"empty:{kind}"] = (empty[kind], None, "empty")
    return sets


def _other_hands(path: str | None):
    if path is None:
        return None
    if not Path(path).exists():
        raise SignsError(f"--other-hands {path}: no such folder")
    return load_dataset(path).evaluation_split()


def _models(s: RobustnessSettings) -> list[tuple[str, Path, NoSign]]:
    """(name, path, its "no sign" threshold) of every model to score: a manifest folder's Keras
    file and exports, or one model file."""
    from export.keras_model import calibrated_no_sign

    p = Path(s.models)
    if p.is_file():
        if p.suffix == ".keras":
            return [("keras", p, calibrated_no_sign(p))]
        return [(p.stem, p, describe_model(p, verify=False).no_sign)]
    manifest_path = p / MANIFEST_NAME
    if not manifest_path.is_file():
        raise SignsError(f"--models {p}: neither a model file nor a folder with {MANIFEST_NAME}")
    manifest = read_manifest(manifest_path)
    out = []
    keras = manifest.keras.path
    if keras is not None and s.keras and keras.is_file():
        out.append(("keras", keras.resolve(), manifest.no_sign))
    out += [(m.format, m.path, manifest.no_sign) for m in manifest.models if m.path.is_file()]
    return out


def _predictor(path: Path):
    if path.suffix == ".keras":
        try:
            import keras
        except ImportError:
            raise SignsError(f"{path}: scoring a Keras model needs the train extra") from None
        from runtime.preprocess import to_model_input

        model = keras.models.load_model(path, compile=False)
        return lambda x: model.predict(to_model_input(x), verbose=0, batch_size=512)
    from runtime.backends import load_backend

    backend = load_backend(path, threads=os.cpu_count())

    def predict(x: np.ndarray) -> np.ndarray:
        return np.concatenate([backend.predict(x[i : i + 256]) for i in range(0, len(x), 256)])

    return predict


def score(probs: np.ndarray, y: np.ndarray | None, group: str, min_conf: float) -> dict:
    """Accuracy for hands (and correct-and-shown at ``min_conf``); "no sign" rate for empties."""
    top = probs.max(1)
    if y is None:
        return {
            "no_sign": float(np.mean(top < min_conf)),
            "top_p": float(np.mean(top)),
            "n": len(top),
        }
    right = probs.argmax(1) == y
    return {
        "accuracy": float(np.mean(right)),
        "shown_right": float(np.mean(right & (top >= min_conf))),
        "n": len(y),
    }


def summarise(rows: dict) -> dict:
    """The headline numbers of one model's rows."""
    shifts = [r["accuracy"] for k, r in rows.items() if ":" in k and not k.startswith("empty")]
    empties = [r["no_sign"] for k, r in rows.items() if k.startswith("empty:")]
    out = {
        "clean": rows["clean"]["accuracy"],
        "clean_shown_right": rows["clean"]["shown_right"],
        "shift_mean": float(np.mean(shifts)),
        "shift_worst": float(np.min(shifts)),
        "cluttered": rows["background:4"]["accuracy"],
        "empty_no_sign": float(np.mean(empties)),
    }
    if "other-hands" in rows:
        out["other_hands"] = rows["other-hands"]["accuracy"]
        out["other_hands_shown_right"] = rows["other-hands"]["shown_right"]
    return out


def run(s: RobustnessSettings) -> dict:
    """Build the sets, score every model, write results.json / results.md / results.png."""
    from benchmarks.robustness import report

    models = _models(s)
    if not models:
        raise SignsError(f"--models {s.models}: no model files found")
    out = ensure_writable_dir(s.out)
    t0 = time.perf_counter()
    sets = build_sets(s)
    print(f"{len(sets)} image sets, {sum(len(v[0]) for v in sets.values())} images, "
          f"built in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    everything = np.concatenate([x for x, _, _ in sets.values()])
    results: dict = {"settings": s.to_dict(), "models": {}, "shifts": _shift_table()}
    for name, path, no_sign in models:
        t1 = time.perf_counter()
        min_conf, origin = no_sign.resolve(s.min_confidence)
        try:
            predict = _predictor(path)
        except ModelError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        # One call over every set: Keras's per-call overhead would dominate 49 small calls.
        probs = predict(everything)
        rows, start = {}, 0
        for k, (x, y, g) in sets.items():
            rows[k] = score(probs[start : start + len(x)], y, g, min_conf)
            start += len(x)
        summary = summarise(rows)
        results["models"][name] = {
            "path": str(path),
            "min_confidence": {"value": min_conf, "source": origin},
            "summary": summary,
            "rows": rows,
        }
        print(f"{name:<15} " + "  ".join(f"{k} {v:.3f}" for k, v in summary.items())
              + f"  ({time.perf_counter() - t1:.1f} s)")  # fmt: skip
    results["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out / "results.json", results)
    write_text(out / "results.md", report.markdown(results))
    report.plot(results, out / "results.png")
    print(f"wrote {out}/results.json, results.md, results.png in {results['seconds']} s")
    return results


def _shift_table() -> dict:
    return {s.name: {"severities": list(s.severities), "unit": s.unit} for s in SHIFTS}
