"""python -m benchmarks.finetune: fine-tuning measured on other people's hands, split by person.

``other-hands`` holds one photo per class from each of 40 people; a person's six photos have
consecutive image numbers. The people are split into folds (default 4 x 10): for each fold the
base model is fine-tuned on the photos of the other people (all of them, or only N people, i.e.
N samples per class, to see how many a user needs), exported to int8 TFLite, and both the base
model's and the fine-tuned model's int8 files are scored on the held-out people with
``runtime.evaluate``. A person's photos are never on both sides. Then the model is fine-tuned on
all 40 people and its int8 file is scored on the SIGNS test set (the export gate's figure).

Nothing here chooses a setting: the figures are reported, as the brief asks of other-hands.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.cli import opt, run_command
from runtime.dataset import IMAGE_SUFFIXES, NUM_CLASSES
from runtime.errors import DataError

PERSON_GAP = 4  # image numbers further apart than this start a new person (measured: 2 within,
# at least 5 between: the camera's numbering skips a frame now and then)


@dataclass
class FinetuneBenchSettings:
    hands: str = opt("../shared/other-hands", help="<label>/IMG_<n>.jpg, 40 people x 6 classes")
    init: str = opt("artifacts/model.keras", help="the base model (python -m train)")
    data: str | None = opt(None, help="SIGNS; when omitted, $SIGNS_DATA, else ./data")
    out: str = opt("artifacts/finetune-bench", help="work folders, models and results.json")
    folds: int = opt(4, help="people folds; each fold's people are held out once")
    # 2 per class would be refused (MIN_SAMPLES).
    sizes: str = opt(
        "3,5,all", metavar="LIST", help="people (= samples per class) fine-tuned on, per fold"
    )
    seed: int = opt(1, help="seed of the folds and of the fine-tunes")
    all_people: bool = opt(True, help="skip the fine-tune on all 40 people")


def group_people(root: Path) -> list[list[tuple[Path, int]]]:
    """The photos of ``root/<label>/`` grouped into people by consecutive image numbers.

    Raises:
        DataError: a file name without a number, or a group that is not one photo per class
            (the numbering does not separate people, so a split could leak a person).
    """
    items = []
    for f in root.glob("*/*"):
        if f.suffix.lower() not in IMAGE_SUFFIXES or not f.parent.name.isdigit():
            continue
        m = re.search(r"(\d+)", f.stem)
        if m is None:
            raise DataError(f"{f}: no image number in the file name")
        items.append((int(m.group(1)), f, int(f.parent.name)))
    if not items:
        raise DataError(f"{root}: no photos in <label>/ subfolders")
    items.sort()
    people: list[list[tuple[int, Path, int]]] = []
    for item in items:
        if not people or item[0] - people[-1][-1][0] > PERSON_GAP:
            people.append([])
        people[-1].append(item)
    for p in people:
        if sorted(lb for _, _, lb in p) != list(range(NUM_CLASSES)):
            raise DataError(f"{root}: images {p[0][0]}-{p[-1][0]} are not one photo per class")
    return [[(f, lb) for _, f, lb in p] for p in people]


def write_people(people: list[list[tuple[Path, int]]], dest: Path) -> Path:
    """Copy the people's photos into ``dest/<label>/`` (the captures layout)."""
    shutil.rmtree(dest, ignore_errors=True)
    for person in people:
        for f, label in person:
            (dest / str(label)).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / str(label) / f.name)
    return dest


def _fine_tune_and_export(
    samples: Path, out: Path, s: FinetuneBenchSettings
) -> tuple[dict, Path, float]:
    """Fine-tune, export int8 TFLite; return (metrics, int8 file, int8 SIGNS test accuracy)."""
    from train import TrainSettings, run

    metrics = run(
        TrainSettings(
            data=s.data,
            fine_tune=str(samples),
            init=s.init,
            out=str(out),
            plots=False,
            verbose=0,
            seed=s.seed,
        )
    )
    report = _export(out / "model.keras", out / "export", s)
    return metrics, out / "export" / "tflite-int8.tflite", report


def _export(model: Path, out: Path, s: FinetuneBenchSettings) -> float:
    from export import ExportSettings, main_export
    from export.core import ExportFailed

    settings = ExportSettings(model=str(model), data=s.data, out=str(out), formats=("tflite-int8",))
    try:
        report = main_export(settings)
    except ExportFailed as exc:  # the file is written and scored: a figure, not a stop
        print(f"note: {out}: {exc}; its figures are reported all the same")
        report = exc.report
    return float(report.results[0].accuracy)


def _score(model: Path, data: Path) -> dict:
    from runtime.evaluate import EvaluateSettings, evaluate

    r = evaluate(EvaluateSettings(model=str(model), data=str(data)))
    return {"accuracy": r.accuracy, "n": r.n, "confusion": r.confusion.tolist()}


def run(s: FinetuneBenchSettings) -> dict:
    root, out = Path(s.hands), Path(s.out)
    people = group_people(root)
    print(f"{root}: {len(people)} people, {sum(map(len, people))} photos")
    rng = np.random.default_rng(s.seed)
    order = rng.permutation(len(people))
    folds = np.array_split(order, s.folds)
    out.mkdir(parents=True, exist_ok=True)
    base_int8 = out / "base-export" / "tflite-int8.tflite"
    results: dict = {
        "settings": asdict(s),
        "base_signs_int8": _export(Path(s.init), base_int8.parent, s),
    }
    results["folds"] = []
    for k, held in enumerate(folds):
        train_people = [i for i in order if i not in set(held)]
        assert not set(train_people) & set(held)
        heldout = write_people([people[i] for i in held], out / f"fold{k}" / "heldout")
        before = _score(base_int8, heldout)
        fold = {"heldout_people": sorted(int(i) for i in held), "before": before, "after": {}}
        for size in s.sizes.split(","):
            n = len(train_people) if size == "all" else int(size)
            chosen = train_people[:n]  # order is already a seeded permutation
            samples = write_people([people[i] for i in chosen], out / f"fold{k}" / f"train{n}")
            t0 = time.perf_counter()
            metrics, int8, signs = _fine_tune_and_export(samples, out / f"fold{k}" / f"ft{n}", s)
            after = _score(int8, heldout)
            fold["after"][str(n)] = {
                **after,
                "signs_test_int8": signs,
                "fine_tune_seconds": metrics["fine_tune"]["seconds"],
                "fit_seconds": metrics["fit_seconds"],
                "with_export_seconds": round(time.perf_counter() - t0, 1),
                "user_val_after": metrics["fine_tune"]["after"]["user_val"]["accuracy"],
            }
            print(
                f"fold {k} ({len(held)} held-out people), {n} people fine-tuned on: held-out "
                f"int8 {before['accuracy']:.4f} -> {after['accuracy']:.4f}, SIGNS int8 "
                f"{signs:.4f}, fine-tune {metrics['fine_tune']['seconds']:.0f} s",
                flush=True,
            )
        results["folds"].append(fold)
        _write(out / "results.json", results)
    if s.all_people:
        metrics, int8, signs = _fine_tune_and_export(root, out / "all", s)
        results["all"] = {
            "signs_test_int8": signs,
            "user_all_keras": metrics["fine_tune"]["after"]["user_all"]["accuracy"],
            "fine_tune_seconds": metrics["fine_tune"]["seconds"],
            "fit_seconds": metrics["fit_seconds"],
        }
    _write(out / "results.json", results)
    print(report(results))
    return results


def _write(path: Path, obj: dict) -> None:
    from runtime.fsutil import write_json

    write_json(path, obj)


def report(results: dict) -> str:
    """Pooled confusion matrices (every person held out once) and per-size accuracies."""
    folds = results["folds"]
    lines = [f"base int8 SIGNS test: {results['base_signs_int8']:.4f}"]

    def pooled(get) -> np.ndarray:
        return sum(np.array(get(f)["confusion"]) for f in folds)

    def table(title: str, c: np.ndarray) -> None:
        acc = np.trace(c) / c.sum()
        lines.append(f"{title}: accuracy {acc:.4f} ({np.trace(c)}/{c.sum()})")
        lines.append("true\\pred " + " ".join(f"{j:>4}" for j in range(NUM_CLASSES)))
        for i, row in enumerate(c):
            lines.append(f"{i:>9} " + " ".join(f"{v:>4}" for v in row))

    table("before (base int8), held-out people pooled over folds", pooled(lambda f: f["before"]))
    for size in folds[0]["after"]:
        accs = [f["after"][size]["accuracy"] for f in folds]
        signs = [f["after"][size]["signs_test_int8"] for f in folds]
        secs = [f["after"][size]["fine_tune_seconds"] for f in folds]
        table(f"after, {size} people per fold", pooled(lambda f, s=size: f["after"][s]))
        lines.append(
            f"  per fold {', '.join(f'{a:.3f}' for a in accs)}; SIGNS int8 "
            f"{', '.join(f'{a:.3f}' for a in signs)}; "
            f"fine-tune s {', '.join(f'{t:.0f}' for t in secs)}"
        )
    if "all" in results:
        a = results["all"]
        lines.append(
            f"all 40 people: SIGNS test int8 {a['signs_test_int8']:.4f}, fine-tune "
            f"{a['fine_tune_seconds']:.0f} s (fit {a['fit_seconds']:.0f} s)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    run_command(
        FinetuneBenchSettings, run, argv, prog="python -m benchmarks.finetune", description=__doc__
    )


if __name__ == "__main__":
    main()
