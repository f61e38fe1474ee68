"""python -m benchmarks.arm64: the runtime on an emulated Raspberry Pi (arm64) vs natively."""

from __future__ import annotations

import argparse

from benchmarks.arm64 import Arm64Settings, run
from benchmarks.arm64.settings import CACHE_ENV, CPU_CHOICES
from runtime.cli import flag
from runtime.errors import run_cli


def main(argv: list[str] | None = None) -> None:
    d = Arm64Settings()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.arm64",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Exit code 0 only when every label is identical and every output is within its "
        "tolerance; 1 when one differs; 2 for bad input or a missing tool or registry. "
        "Needs qemu-user-static (sudo apt-get install qemu-user-static).",
    )
    p.add_argument(
        "--models", type=str, default=d.models, help="folder of exported .tflite/.onnx files"
    )
    p.add_argument(
        "--data",
        type=str,
        default=None,
        help="dataset folder or .h5 file; when omitted, $SIGNS_DATA, else ./data",
    )
    p.add_argument(
        "--cpu",
        type=str,
        choices=CPU_CHOICES,
        default=d.cpu,
        help="emulated CPU: cortex-a72 (Raspberry Pi 4), cortex-a76 (Pi 5) or both",
    )
    p.add_argument(
        "--cache",
        type=str,
        default=None,
        help=f"folder for the arm64 userland; when omitted, ${CACHE_ENV}, else "
        "~/.cache/signs-edge/arm64",
    )
    p.add_argument(
        "--frames", type=int, default=d.frames, help="frames in the generated 640x480 video"
    )
    p.add_argument(
        *flag("float-atol"),
        type=float,
        default=d.float_atol,
        help="largest |native - emulated| difference of a float model's probabilities",
    )
    p.add_argument(
        *flag("int8-steps"),
        type=int,
        default=d.int8_steps,
        help="8-bit quantization steps the output of a model with int8 compute (tflite-int8, "
        "tflite-dynamic, onnx-int8) may move; labels must match regardless",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep both runs' outputs (kept anyway on a mismatch)"
    )
    a = p.parse_args(argv)
    settings = Arm64Settings(
        models=a.models,
        data=a.data,
        cpu=a.cpu,
        cache=a.cache,
        frames=a.frames,
        float_atol=a.float_atol,
        int8_steps=a.int8_steps,
        keep=a.keep,
    )
    run_cli(lambda: run(settings))


if __name__ == "__main__":
    main()
