"""`flan-ul2r train` in a child process on the toy mixture (tests/_train_toy.py), for tests that need
a process: exit statuses, signals. Arguments are `train`'s; the toy mixture is registered first.

FLAN_UL2R_TEST_BATCH_DELAY=SECONDS makes every batch that slow to arrive, so a signal sent after a few
logged steps lands mid-run. FLAN_UL2R_TEST_WAITING_FILE=PATH: the loader creates PATH when it starts on the
first batch and then never delivers it, so a test can signal a run that has finished starting up and waits
for its data; once the process has had its signal, the loader fails ("abandoned"). A run that acts on the
signal at once exits 75 and never sees that failure; one that waited for the first batch would.
"""
from __future__ import annotations

import os
import sys
import time

from flan_ul2r import cli
from flan_ul2r.tf_devices import import_tensorflow
from flan_ul2r.training import loop, preemption

import_tensorflow()  # first, as `flan-ul2r` loads it: without Keras's optional extras (tf_devices.py)
from tests._train_toy import register_toy_mixture  # noqa: E402  (seqio, after TensorFlow)


class SlowData:
    """The loader, `delay` seconds per batch, with its `state()`."""

    def __init__(self, data, delay: float):
        self.data, self.delay = data, delay
        self.waiting_file = os.environ.get("FLAN_UL2R_TEST_WAITING_FILE")

    def __iter__(self):
        return self

    def __next__(self):
        if self.waiting_file:
            open(self.waiting_file, "a").close()
            while not _signalled():
                time.sleep(0.05)
            raise RuntimeError("the test loader was abandoned: the first batch never comes")
        time.sleep(self.delay)
        return next(self.data)

    def state(self):
        return self.data.state()


def _signalled() -> bool:
    watcher = preemption._ACTIVE  # the process's watcher, which notes the signal's name
    return watcher is not None and watcher.signal_name is not None


def main() -> int:
    register_toy_mixture()
    delay = float(os.environ.get("FLAN_UL2R_TEST_BATCH_DELAY", "0"))
    if delay or os.environ.get("FLAN_UL2R_TEST_WAITING_FILE"):
        make = loop.make_data
        loop.make_data = lambda cfg, state: SlowData(make(cfg, state), delay)
    return cli.main(["train", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
