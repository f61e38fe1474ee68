"""Import TensorFlow quietly: no start-up noise, every error still shown.

On a machine without a GPU, the pip ``tensorflow`` wheel logs from C++, straight to file
descriptor 2, lines such as ``E0000 ... cuda_platform.cc:52] failed call to cuInit`` that read
like failures. ``TF_CPP_MIN_LOG_LEVEL`` alone does not help: some lines are written before
TensorFlow reads it (absl's pre-init logging), cuInit's is an ERROR, and level 3 would hide every
C++ error. So the level is set to 2 (no INFO or WARNING from C++), and:

:func:`import_tensorflow` captures fd 2 while TensorFlow loads and initialises its
devices, then writes back every captured line except the known start-up notices in
:data:`NOISE`. Anything else (a real error, a warning we have not seen) still reaches stderr.
Every command that uses TensorFlow calls it before its first TensorFlow or Keras import; the
runtime's own code never does (it never imports TensorFlow).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from types import ModuleType

# Start-up notices of the CPU-only case: no CUDA driver, CPU instruction sets, absl's pre-init
# notice. Matched against whole lines; a line that does not match is shown.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:. ]+\d+ (cudart_stub|cuda_platform|cuda_executor|cpu_feature_guard"
    r"|cuda_dnn|cuda_fft|cuda_blas|port)\.cc:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate .*"
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
    r"output_inference_type: \w+"
    r")$"
)
VERBOSE_ENV = "SIGNS_TF_VERBOSE"  # set to 1 to see TensorFlow's start-up log unfiltered


def import_tensorflow(verbose: bool = False) -> ModuleType:
    """``import tensorflow``, its start-up notices filtered unless ``verbose``.

    Args:
        verbose: show TensorFlow's start-up log as it is (also: ``SIGNS_TF_VERBOSE=1``).
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if verbose or os.environ.get(VERBOSE_ENV) == "1":
        import tensorflow as tf

        return tf
    # C++ INFO and WARNING off (the TFLite converter warns "Ignored output_format" on every
    # conversion); ERROR still shows, and Python warnings and exceptions are untouched.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        import tensorflow as tf

        # Device discovery is where cuInit is called and fails: do it while filtered.
        tf.config.list_physical_devices()
    return tf


@contextlib.contextmanager
def filtered_stderr():
    """Capture fd 2 for the block; afterwards write back every line :data:`NOISE` does not match.

    Also used around the TFLite converter, which prints its int8 settings from C++.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, IDE)
        fd = 2
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not NOISE.match(line)
            ]
            if kept:
                os.write(fd, ("\n".join(kept) + "\n").encode())
