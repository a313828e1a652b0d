"""Test session setup: CPU only, 8 fake devices for sharding tests, fast XLA compiles, quiet TensorFlow."""
import os
import shutil
import tempfile

from tests._xla import xla_flags

os.environ.setdefault("XLA_FLAGS", xla_flags(8))  # tests/_xla.py
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent XLA cache per suite run (flan_ul2r/compile_cache.py; the workers and every child process
# inherit it): the same train steps and decoding loops compile in many tests and fresh processes, and
# each is compiled once. A fresh folder per run, deleted at its end (pytest_sessionfinish), so no run
# reads another's. Programs that compile in 0.2 s or more under the fast flags of tests/_xla.py are stored.
SUITE_XLA_CACHE = os.path.join(tempfile.gettempdir(), f"flan-ul2r-test-xla-cache-{os.getpid()}")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", SUITE_XLA_CACHE)  # workers inherit the main process's
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import pytest  # noqa: E402  (after the environment above: JAX reads it on import)

# `--cpu-durations=N`: where the suite's CPU goes, child processes included (tests/_cpu_durations.py)
from tests._cpu_durations import (  # noqa: E402, F401  (hooks: pytest finds them in this module)
    pytest_addoption,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_terminal_summary,
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny toy model's MODEL_DIR with checkpoints 2, 4 and 6 (tests/_checkpointed_run.py), made once per
    session for every test of a run's directory; returns its RunConfig. Copy `tiny_run.model_dir` before
    changing anything in it."""
    from tests._checkpointed_run import checkpointed_run

    return checkpointed_run(tmp_path_factory.mktemp("tiny_run") / "run")


# The test files that take 20 s or more on 2 cores (`--durations`), longest first. pytest.ini hands whole
# files to the workers (`--dist loadfile`, so a module's fixtures are made once) in collection order
# (`--no-loadscope-reorder`); starting with these leaves short files for the end, where a long one would
# keep one worker busy while the other has nothing left (9 min 53 s -> 9 min 39 s on 2 cores).
LONGEST_FIRST = (
    "test_tpu_scaling", "test_pipeline", "test_trainer", "test_preemption", "test_decoding",
    "test_pipeline_hf", "test_decoding_memorised", "test_seqio_tasks", "test_seqio_train", "test_train_cli",
    "test_run_safety", "test_multihost", "test_wheel_install", "test_eval_cli", "test_hf_architectures",
    "test_bad_inputs", "test_remote_fs", "test_eval_copying", "test_seqio_resume", "test_prefix_cache",
    "test_api", "test_model", "test_attention")


def pytest_sessionfinish(session):
    """The main process (not a pytest-xdist worker) deletes the suite's XLA cache folder at the end."""
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(SUITE_XLA_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """Moves the files of LONGEST_FIRST to the front, in its order; tests keep their order within a file."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
