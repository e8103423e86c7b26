"""Import TensorFlow and Keras once, without their start-up noise on the terminal.

TensorFlow's C++ runtime writes log lines to file descriptor 2 while it is
imported (absl "log messages before InitializeLog", CUDA stubs), whatever
TF_CPP_MIN_LOG_LEVEL says. Standard error is pointed at /dev/null for the
duration of the import only, so gradaudit's own one-line errors stay readable.

TensorFlow's oneDNN kernels are switched off (``TF_ENABLE_ONEDNN_OPTS=0``) unless
the environment says otherwise: in TensorFlow 2.21 the oneDNN gradient of a
1×1 stride-2 Conv2D on a 60×60 input — the shortcut of every Xception/ResNet
block — corrupts the heap and kills the process (seen on a published
mini-Xception), which would end a batch audit with no report at all.
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
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
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
