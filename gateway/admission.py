"""Admission control: a bound on the work waiting or running in one queue (relaxation atoms,
generation sequences, prediction jobs). Past it a request is refused with 503 and a
``Retry-After`` estimated from the recent throughput. An empty queue admits any request,
however large, so none is refused forever, and what is held stays bounded by the limit or
the largest request body.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

THROUGHPUT_WINDOW_S = 60.0
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 1, 300
RETRY_AFTER_UNKNOWN_S = 5  # before anything has finished


class QueueFull(Exception):
    def __init__(self, queue: str, unit: str, held: int, units: int, limit: int, retry_after_s: int):
        super().__init__(f"the {queue} queue is full: {held} {unit} queued, this request adds {units}, "
                         f"the bound is {limit}; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Throughput:
    """Units finished per second over the last ``window_s``."""

    def __init__(self, window_s: float = THROUGHPUT_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._finished: deque[tuple[float, int]] = deque()

    def add(self, units: int) -> None:
        now = self.clock()
        self._finished.append((now, units))
        while self._finished and self._finished[0][0] < now - self.window_s:
            self._finished.popleft()

    def per_s(self) -> float | None:
        if len(self._finished) < 2:
            return None
        span = self.clock() - self._finished[0][0]
        return sum(units for _, units in self._finished) / span if span > 0 else None


class Bound:
    """Units held by one queue (waiting or running) against its limit."""

    def __init__(self, queue: str, unit: str, limit: int):
        self.queue, self.unit, self.limit = queue, unit, limit
        self.held = 0
        self.throughput = Throughput()

    def take(self, units: int, check: bool = True) -> None:
        """Hold ``units`` more, or (with ``check``) QueueFull says when to come back."""
        if check and self.held and self.held + units > self.limit:
            raise QueueFull(self.queue, self.unit, self.held, units, self.limit, self.retry_after_s(units))
        self.held += units

    def give_back(self, units: int, finished: bool = True) -> None:
        """Release ``units``; those ``finished`` (not failed or abandoned) count toward the throughput."""
        self.held -= units
        if finished and units:
            self.throughput.add(units)

    def retry_after_s(self, units: int) -> int:
        """Seconds until, at the recent throughput, enough units have left for these to fit."""
        rate = self.throughput.per_s()
        if not rate:
            return RETRY_AFTER_UNKNOWN_S
        excess = self.held + units - self.limit
        return min(max(math.ceil(excess / rate), RETRY_AFTER_MIN_S), RETRY_AFTER_MAX_S)
