"""Keep TensorFlow off the accelerators: tf.data only needs the CPU, and a TF that sees the GPUs/TPUs
grabs their memory (most of each GPU by default) before JAX allocates. t5x does the same in its
train.py (`tf.config.experimental.set_visible_devices([], "GPU")`). `flan_ul2r.cli.main` calls
`hide_accelerators_from_tensorflow()` before any verb runs; notebooks using `flan_ul2r.api` can call it
first thing too.

`quiet_libtpu()` sets the environment libtpu needs on a machine without TPU chips (the test and
`tpu-compile` extras install libtpu everywhere): `TPU_ACCELERATOR_TYPE` and `TPU_WORKER_HOSTNAMES=localhost`
(otherwise libtpu warns that it cannot read them from the GCE metadata server) and
`ALLOW_MULTIPLE_LIBTPU_LOAD=1` (otherwise libtpu takes /tmp/libtpu_lockfile and a second process fails).

`import_tensorflow()` loads TensorFlow without Keras's optional scikit-learn, pandas and matplotlib (Keras,
which TF imports eagerly, loads them when installed, for its sklearn wrappers, DataFrame inputs and image
gallery plots; nothing here trains through Keras): TensorFlow and seqio import in 4.9 s of CPU instead of
5.8 s, and `flan-ul2r inspect --vocab byte` runs in 7.2 s of CPU and 864 MB instead of 8.8 s and 985 MB
(2 cores); leaving out matplotlib as well takes TensorFlow's import from 4.5 to 3.7 s of CPU. All three
import normally afterwards: pandas for the loaders that read Parquet or HF `datasets`, matplotlib for the
PNG plots, which import it when they draw.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from types import ModuleType

from flan_ul2r import hidden_imports

ACCELERATOR_TYPES = ("GPU", "TPU")
KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib")  # imported by Keras when installed, for what we never use


def import_tensorflow() -> ModuleType:
    """`import tensorflow`, without KERAS_EXTRAS while it loads (module docstring)."""
    with hidden_imports.without(*KERAS_EXTRAS):
        import tensorflow as tf
    return tf


def hide_accelerators_from_tensorflow() -> list[str]:
    """Makes GPUs and TPUs invisible to TensorFlow (JAX still sees them); returns the hidden types.

    Must run before TensorFlow initializes its devices; if it already has, logs a warning naming what
    TF holds (nothing to undo then)."""
    tf = import_tensorflow()

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


def _has_tpu_chips() -> bool:
    try:
        from jax._src import hardware_utils  # private; the check jax itself makes before loading libtpu

        return bool(hardware_utils.num_available_tpu_chips_and_device_id()[0])
    except (ImportError, AttributeError):
        return False


def quiet_libtpu(accelerator_type: str = "v5p-8") -> None:
    """Environment libtpu needs on a machine without TPU chips (this module's docstring); call it before JAX
    initializes its backends. A no-op on a TPU VM (libtpu reads the real values there) or without libtpu.
    The accelerator type only names the (absent) local hardware; compiles target the topology asked for."""
    if importlib.util.find_spec("libtpu") is None or _has_tpu_chips():
        return
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", accelerator_type)
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
