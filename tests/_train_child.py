"""`flan-ul2r train` in a child process on the toy mixture (tests/_train_toy.py), for tests that need
a process: exit statuses, signals. Arguments are `train`'s; the toy mixture is registered first.

FLAN_UL2R_TEST_BATCH_DELAY=SECONDS makes every batch that slow to arrive, so a signal sent after a few
logged steps lands mid-run. FLAN_UL2R_TEST_WAITING_FILE=PATH: the loader creates PATH when it starts on the
first batch, so a test can signal a run that has finished starting up and waits for its data.
"""
from __future__ import annotations

import os
import sys
import time

from flan_ul2r import cli
from flan_ul2r.training import loop
from tests._train_toy import register_toy_mixture


class SlowData:
    """The loader, `delay` seconds per batch, with its `state()`."""

    def __init__(self, data, delay: float):
        self.data, self.delay = data, delay
        self.waiting_file = os.environ.get("FLAN_UL2R_TEST_WAITING_FILE")

    def __iter__(self):
        return self

    def __next__(self):
        if self.waiting_file:  # the first batch only
            open(self.waiting_file, "a").close()
            self.waiting_file = None
        time.sleep(self.delay)
        return next(self.data)

    def state(self):
        return self.data.state()


def main() -> int:
    register_toy_mixture()
    delay = float(os.environ.get("FLAN_UL2R_TEST_BATCH_DELAY", "0"))
    if delay:
        make = loop.make_data
        loop.make_data = lambda cfg, state: SlowData(make(cfg, state), delay)
    return cli.main(["train", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
