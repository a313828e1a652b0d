"""Test session setup: CPU only, 8 fake devices for sharding tests, fast XLA compiles, quiet TensorFlow."""
import os

from tests._xla import xla_flags

os.environ.setdefault("XLA_FLAGS", xla_flags(8))  # tests/_xla.py
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402  (after the environment above: JAX reads it on import)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny toy model's MODEL_DIR with checkpoints 2, 4 and 6 (tests/_checkpointed_run.py), made once per
    session for every test of a run's directory; returns its RunConfig. Copy `tiny_run.model_dir` before
    changing anything in it."""
    from tests._checkpointed_run import checkpointed_run

    return checkpointed_run(tmp_path_factory.mktemp("tiny_run") / "run")
