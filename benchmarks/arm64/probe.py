"""Record what the runtime computes on this machine, as raw arrays, for an exact comparison.

``python -m benchmarks.arm64`` runs this file natively and under qemu and compares the folders
it writes. It is run as a script, not imported from the ``benchmarks`` package: the emulated
userland holds only the runtime's dependencies, so this imports ``runtime.*``, numpy and OpenCV
and nothing else of the project.

``--decode`` (with ``--data`` and ``--video``) writes:

- ``images.npy``: the evaluation images as this machine decodes and preprocesses them;
- ``frames.npy``: the video's frames as this machine decodes them, cut to the camera pipeline's
  region of interest and preprocessed (64x64 RGB);
- ``inputs.json``: image names and labels, a SHA-256 of every full decoded frame, versions.

``--models`` writes, per model file, ``<file>.images.npy`` (probabilities of the reference
images), ``<file>.raw.npy`` and ``<file>.smoothed.npy`` (per-frame probabilities through
:class:`runtime.pipeline.FramePipeline`, fed the reference frames) and ``<file>.json`` (labels
per frame, runtime, tensor details). The reference inputs are ``--reference`` (the native run's
folder), else this run's own, so a difference in inference is never mistaken for a difference in
decoding; decoding is compared on its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np


def decode(data: str, video: str, out: Path) -> None:
    """Decode and preprocess the evaluation images and the video's frames."""
    import cv2

    import runtime
    from runtime.dataset import load_dataset
    from runtime.pipeline import FramePipeline

    t0 = time.perf_counter()
    split = load_dataset(data).evaluation_split()
    np.save(out / "images.npy", split.x)

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"error: {video}: cannot open the video")
    recorder = _Recorder()
    pipe = FramePipeline(recorder, smooth=0.0)  # the camera loop's own ROI + preprocessing
    digests, crops, shape = [], [], None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        digests.append(hashlib.sha256(frame.tobytes()).hexdigest())
        shape = list(frame.shape)
        pipe.step(frame)
        crops.append(recorder.last)
    cap.release()
    np.save(out / "frames.npy", np.stack(crops))
    info = {
        **_platform(),
        "opencv": cv2.__version__,
        "runtime_package": str(Path(runtime.__file__).parent),
        "names": list(split.names),
        "labels": split.y.tolist(),
        "frame_sha256": digests,
        "frame_shape": shape,
        "seconds": time.perf_counter() - t0,
    }
    (out / "inputs.json").write_text(json.dumps(info) + "\n")


def infer(models: list[str], reference: Path, out: Path) -> None:
    """Every model's probabilities on the reference images and frames."""
    from runtime.backends import load_backend
    from runtime.pipeline import FramePipeline

    images = np.load(reference / "images.npy")
    frames = np.load(reference / "frames.npy")
    for model in models:
        t0 = time.perf_counter()
        name = Path(model).name
        backend = load_backend(model, threads=1)
        np.save(out / f"{name}.images.npy", backend.predict(images))
        pipe = FramePipeline(backend)
        raw, smoothed, labels = [], [], []
        for crop in frames:
            # A 64x64 frame's ROI is the whole frame and preprocessing leaves it as it is, so
            # this is the camera loop's step() on exactly the reference crop.
            result = pipe.step(np.ascontiguousarray(crop[:, :, ::-1]))
            raw.append(result.raw)
            smoothed.append(result.probs)
            labels.append(result.label)
        np.save(out / f"{name}.raw.npy", np.stack(raw))
        np.save(out / f"{name}.smoothed.npy", np.stack(smoothed))
        info = {
            **_platform(),
            "runtime": backend.runtime,
            "input": backend.input.to_dict(),
            "output": backend.output.to_dict(),
            "frame_labels": labels,
            "seconds": time.perf_counter() - t0,
        }
        (out / f"{name}.json").write_text(json.dumps(info) + "\n")


def _platform() -> dict:
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


class _Recorder:
    """A stand-in backend that keeps the preprocessed input the pipeline hands it."""

    runtime = "recorder"

    def __init__(self) -> None:
        self.last: np.ndarray | None = None

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        self.last = image.copy()
        return np.full(6, 1 / 6, dtype=np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=str, required=True, help="output folder")
    parser.add_argument("--decode", action="store_true", help="decode --data and --video")
    parser.add_argument("--data", type=str, default=None, help="dataset path")
    parser.add_argument("--video", type=str, default=None, help="video file")
    parser.add_argument("--models", type=str, nargs="*", default=[], help="model files")
    parser.add_argument("--reference", type=str, default=None, help="folder of reference inputs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def work() -> None:
        if args.decode:
            decode(args.data, args.video, out)
        if args.models:
            infer(args.models, Path(args.reference) if args.reference else out, out)

    from runtime.errors import run_cli

    run_cli(work)


if __name__ == "__main__":
    main()
