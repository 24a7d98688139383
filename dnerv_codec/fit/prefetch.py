"""Batches prepared ahead in a background thread while the model runs the current step."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[Item, Prepared]):
    """Iterates over (item, prepare(item)) for the items of `items`, prepared up to `depth` ahead
    by one daemon thread, in order.

    The thread does the host side of a step (reading a batch's frames from the cache into pinned
    memory), which would otherwise leave a GPU idle at every step; on a CPU it is a small share of
    a step either way. An error in the thread is raised by the next() that reaches it. close() (or
    leaving a `with` block) stops the thread; batches prepared but not taken are dropped, which is
    harmless: the items depend only on the step they belong to.

    prepared_s: seconds the thread spent in prepare(), what a loop without it would spend;
    waited_s: seconds next() spent waiting for the thread (0 when the pipeline keeps up).
    """

    def __init__(self, items: Iterator[Item], prepare: Callable[[Item], Prepared], depth: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.prepared_s = self.waited_s = 0.0
        self._thread = threading.Thread(
            target=self._run, args=(items, prepare), name="dnerv-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator[Item], prepare: Callable[[Item], Prepared]) -> None:
        try:
            for item in items:
                started = time.perf_counter()
                prepared = prepare(item)
                self.prepared_s += time.perf_counter() - started
                if not self._put((item, prepared)):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Failed(error))
        else:
            self._put(_END)

    def __iter__(self) -> Prefetcher[Item, Prepared]:
        return self

    def __next__(self) -> tuple[Item, Prepared]:
        started = time.perf_counter()
        value = self._queue.get()
        self.waited_s += time.perf_counter() - started
        if value is _END or isinstance(value, _Failed):
            self._queue.put(value)  # stays exhausted (or failed) for a later next()
            if value is _END:
                raise StopIteration
            raise value.error
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[Item, Prepared]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
