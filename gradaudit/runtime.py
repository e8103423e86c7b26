"""Import TensorFlow and Keras once, without their start-up noise on the terminal.

TensorFlow's C++ runtime writes log lines to file descriptor 2 while it is
imported (absl "log messages before InitializeLog", CUDA stubs), whatever
TF_CPP_MIN_LOG_LEVEL says. Standard error is pointed at /dev/null for the
duration of the import only, so gradaudit's own one-line errors stay readable.

TensorFlow runs with its own defaults, oneDNN kernels on unless the user's
``TF_ENABLE_ONEDNN_OPTS`` says otherwise, as the user's own script does (they make
ResNet50's step about 1.8× faster here). Their one known crash (TensorFlow 2.21's
oneDNN gradient of a strided 1×1 Conv2D corrupts the heap) is the CLI's worker's to
survive: a file whose worker is killed is retried with oneDNN off (``worker.py``).
"""

from __future__ import annotations

import importlib
import os
import sys

_verbose = False


def log_verbosely() -> None:
    """Let TensorFlow's own log lines through when it is imported (``--verbose``).

    Said before the import, not at it: TensorFlow is imported only once a model
    has passed the file checks, deep in the pipeline, or never.
    """
    global _verbose
    _verbose = True


def import_tensorflow() -> None:
    """Import TensorFlow and Keras quietly (a no-op once they are imported)."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    verbose = _verbose
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if verbose:
        importlib.import_module("keras")
        importlib.import_module("tensorflow")
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        importlib.import_module("keras")
        import tensorflow as tf
        from absl import logging as absl_logging

        tf.get_logger().setLevel("ERROR")
        absl_logging.set_verbosity(absl_logging.ERROR)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
