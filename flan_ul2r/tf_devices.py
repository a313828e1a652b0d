"""Keep TensorFlow off the accelerators: tf.data only needs the CPU, and a TF that sees the GPUs/TPUs
grabs their memory (most of each GPU by default) before JAX allocates. t5x does the same in its
train.py (`tf.config.experimental.set_visible_devices([], "GPU")`). `flan_ul2r.cli.main` calls
`hide_accelerators_from_tensorflow()` before any verb runs; notebooks using `flan_ul2r.api` can call it
first thing too.
"""
from __future__ import annotations

import logging

ACCELERATOR_TYPES = ("GPU", "TPU")


def hide_accelerators_from_tensorflow() -> list[str]:
    """Makes GPUs and TPUs invisible to TensorFlow (JAX still sees them); returns the hidden types.

    Must run before TensorFlow initializes its devices; if it already has, logs a warning naming what
    TF holds (nothing to undo then)."""
    import tensorflow as tf

    hidden = []
    for kind in ACCELERATOR_TYPES:
        try:
            tf.config.set_visible_devices([], kind)
            hidden.append(kind)
        except RuntimeError as e:  # devices already initialized
            logging.warning("TensorFlow already initialized its %s devices (%s): they stay visible to TF; "
                            "call flan_ul2r.tf_devices.hide_accelerators_from_tensorflow() first", kind, e)
        except ValueError:  # TF builds without this device type
            hidden.append(kind)
    return hidden
