"""Preemption: a SIGTERM (the scheduler's notice) or SIGINT lets the current step finish, then the loop
saves a checkpoint with its data position and the process exits with `PREEMPTED_EXIT_CODE`.

One process: Python handlers for SIGTERM and SIGINT set a flag the loop reads after each step (a second
SIGINT interrupts at once, for a user who really means it). Several processes (`jax.distributed`): JAX's
coordination service catches SIGTERM on any host and agrees on one step for all of them
(`multihost_utils.reached_preemption_sync_point`), so every host saves the same step; Python handlers are
not installed there (they would replace JAX's, and a flag set on one host only would make the hosts
disagree on when to save).

    with PreemptionWatcher() as preempted:
        for step in ...:
            ...
            if preempted.reached(step): save and stop
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

# sysexits.h EX_TEMPFAIL ("temporary failure, the user is invited to retry"): a scheduler requeues on it,
# and it is neither success (0) nor a crash (1) nor the 143 of a SIGTERM that killed the process.
PREEMPTED_EXIT_CODE = 75
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def multi_process() -> bool:
    from jax._src import distributed

    return distributed.global_state.client is not None


class PreemptionWatcher:
    """Whether to stop after the current step; installs and restores the signal handlers."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
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
        print(f"\n{name} received: finishing this step, then saving a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

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
