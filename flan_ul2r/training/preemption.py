"""Preemption: a SIGTERM (the scheduler's notice) or SIGINT, from the first second of a run to its last,
ends it with `PREEMPTED_EXIT_CODE`, so a launcher that requeues on that status never loses the job.

- Before the first step (gin parsing, model init, checkpoint restore, corpus caching, the seqio skip
  of a resume: minutes on a pod) the handler stops the start-up at once by raising `Preempted`; nothing
  new exists to save (a restored state is the checkpoint it came from) and the message says so:
  "preempted before step N: nothing to save, run again".
- From the first step on, the handler only sets a flag: the current step finishes, the loop saves a
  checkpoint with its data position and returns the signal's name.

One process: Python handlers for SIGTERM and SIGINT (a second SIGINT interrupts at once, for a user who
really means it). Several processes (`jax.distributed`): JAX's coordination service catches SIGTERM on
any host and agrees on one step for all of them (`multihost_utils.reached_preemption_sync_point`), so
every host saves the same step; Python handlers are not installed there (they would replace JAX's, and
a flag set on one host only would make the hosts disagree on when to save). Start-up there is covered
by the first step's sync point: the run saves step 1 and exits 75.

    with watching() as preemption:      # main/train.py: before anything slow; run() again (a no-op then)
        ...                             # start-up: a signal raises Preempted
        preemption.begin_training()     # from here on a signal only sets the flag
        for step in ...:
            ...
            if preemption.reached(step): save and stop
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

# sysexits.h EX_TEMPFAIL ("temporary failure, the user is invited to retry"): a scheduler requeues on it,
# and it is neither success (0) nor a crash (1) nor the 143 of a SIGTERM that killed the process.
PREEMPTED_EXIT_CODE = 75
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ACTIVE: PreemptionWatcher | None = None


class Preempted(BaseException):
    """A signal arrived before the first step. A BaseException (as KeyboardInterrupt) so that no
    `except Exception` on the way swallows it."""

    def __init__(self, signal_name: str, next_step: int | None):
        self.signal_name, self.next_step = signal_name, next_step
        super().__init__(self.message)

    @property
    def message(self) -> str:
        step = f"step {self.next_step}" if self.next_step else "the first step"
        return f"{self.signal_name}: preempted before {step}: nothing to save, run again"


def multi_process() -> bool:
    from jax._src import distributed

    return distributed.global_state.client is not None


class PreemptionWatcher:
    """Whether to stop; installs and restores the signal handlers (module docstring)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.training = False
        self.next_step: int | None = None  # the step a start-up interrupted now would have begun with
        self._previous: dict[int, Any] = {}
        self._distributed = multi_process()

    def __enter__(self) -> PreemptionWatcher:
        if not self._distributed and threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal_name = name
        if not self.training:
            raise Preempted(name, self.next_step)
        print(f"\n{name} received: finishing this step, then saving a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def starting(self, next_step: int | None = None) -> None:
        """Start-up mode (again: a second run in the same process); a signal already noted stops it."""
        self.training, self.next_step = False, next_step
        if self.signal_name is not None:
            raise Preempted(self.signal_name, next_step)

    def begin_training(self) -> None:
        """From now on a signal lets the current step finish and be saved. A signal noted during start-up
        stops here: its Preempted may have been raised where Python only prints it and goes on (a
        `__del__`, a weakref or garbage-collector callback: "Exception ignored in ..."), and the first
        step must not be trained and saved as if nothing had come."""
        if self.signal_name is not None and not self.training:
            raise Preempted(self.signal_name, self.next_step)
        self.training = True

    def reached(self, step: int) -> bool:
        """True once a preemption notice arrived; on several hosts, at the step they all agreed on
        (call it at every step, with increasing steps, on every host)."""
        if self._distributed:
            from jax.experimental import multihost_utils

            if multihost_utils.reached_preemption_sync_point(step):
                self.signal_name = self.signal_name or "preemption notice (JAX sync point)"
                return True
            return False
        return self.signal_name is not None


@contextlib.contextmanager
def watching() -> Iterator[PreemptionWatcher]:
    """The process's watcher: installed by the outermost caller, shared by nested ones."""
    global _ACTIVE
    if _ACTIVE is not None:
        yield _ACTIVE
        return
    with PreemptionWatcher() as watcher:
        _ACTIVE = watcher
        try:
            yield watcher
        finally:
            _ACTIVE = None
