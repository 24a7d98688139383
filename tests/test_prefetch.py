"""Batches read ahead in a thread: same items, same order, errors and stops handed over."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from dnerv_codec.fit.prefetch import Prefetcher


def test_yields_each_item_with_its_prepared_value_in_order_then_stays_exhausted():
    with Prefetcher(iter(range(7)), lambda i: i * i, depth=2) as batches:
        assert list(batches) == [(i, i * i) for i in range(7)]
        with pytest.raises(StopIteration):
            next(batches)


def test_an_error_in_prepare_is_raised_where_it_happened():
    def prepare(i):
        if i == 3:
            raise OSError("short read from the frame cache")
        return i

    with Prefetcher(iter(range(10)), prepare) as batches:
        assert [next(batches) for _ in range(3)] == [(0, 0), (1, 1), (2, 2)]
        for _ in range(2):  # and again on a later next()
            with pytest.raises(OSError, match="short read"):
                next(batches)


def test_close_stops_an_endless_producer_that_read_only_a_few_ahead():
    prepared = []
    batches = Prefetcher(itertools.count(), lambda i: prepared.append(i) or i, depth=2)
    assert next(batches) == (0, 0)
    time.sleep(0.2)  # let it fill the queue
    batches.close()
    assert not any(t.name == "dnerv-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(prepared) <= 1 + 2 + 1  # taken, queued, one waiting to be queued


def test_it_counts_time_preparing_and_time_waiting_for_a_slow_producer():
    def slow(i):
        time.sleep(0.05)
        return i

    with Prefetcher(iter(range(3)), slow) as batches:
        list(batches)
    assert batches.waited_s >= 0.05 and batches.prepared_s >= 0.15
