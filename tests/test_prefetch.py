"""training/prefetch.py: batches arrive in order, each with the loader position after it (exact resume),
errors reach the consumer, and closing stops a producer blocked on a full queue."""
import threading
import time

import numpy as np
import pytest

from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.training.prefetch import DevicePrefetcher
from tests._train_toy import LENGTHS, register_toy_mixture


@pytest.mark.slow
def test_each_batch_carries_the_position_after_it_and_resuming_there_continues_exactly():
    name = register_toy_mixture()
    straight = make_train_iterator(name, LENGTHS, 4, seed=3)
    expected = [next(straight) for _ in range(5)]
    with DevicePrefetcher(make_train_iterator(name, LENGTHS, 4, seed=3), lambda b: b, depth=2) as batches:
        got = [next(batches) for _ in range(3)]
        time.sleep(0.2)  # the thread is now ahead (batches 4 and 5 prefetched)
    for item, want in zip(got, expected):
        for k in want:
            np.testing.assert_array_equal(item.batch[k], want[k])
        assert item.num_tokens == want["decoder_input_tokens"].size
    resumed = make_train_iterator(name, LENGTHS, 4, seed=3, state=got[2].position)  # a save at step 3
    for want in expected[3:]:
        batch = next(resumed)
        for k in want:
            np.testing.assert_array_equal(batch[k], want[k])


class _Numbers:
    def __init__(self, fail_at=None):
        self.i, self.fail_at = 0, fail_at

    def __iter__(self):
        return self

    def __next__(self):
        if self.i == self.fail_at:
            raise ValueError(f"bad record {self.i}")
        self.i += 1
        return {"decoder_input_tokens": np.full((2, 3), self.i)}

    def state(self):
        return {"draw": self.i}


def test_an_error_in_the_thread_is_raised_to_the_consumer_after_the_good_batches():
    with DevicePrefetcher(_Numbers(fail_at=2), lambda b: b) as batches:
        assert [next(batches).position for _ in range(2)] == [{"draw": 1}, {"draw": 2}]
        with pytest.raises(ValueError, match="bad record 2"):
            next(batches)


def test_close_stops_a_producer_blocked_on_a_full_queue():
    before = threading.active_count()
    batches = DevicePrefetcher(_Numbers(), lambda b: b, depth=1)
    time.sleep(0.1)  # the queue is full, the producer waits
    batches.close()
    assert threading.active_count() == before
    with pytest.raises(ValueError, match="depth=0"):
        DevicePrefetcher(_Numbers(), lambda b: b, depth=0)
