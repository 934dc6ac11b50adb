"""Admission control for relaxations, and the queue figures of ``/v1/status``.

The force-field model batches in flight across requests (``matserve.relax_scheduler``): one
queue, in the model, decides what runs. The gateway only decides whether a request may join
it: while the atoms already waiting or running plus the request's would pass ``max_atoms``, the
request is refused with 503 and a ``Retry-After`` estimated from the recent throughput. An
empty queue admits any request, however large, so none is refused forever, and what is held
stays bounded by ``max_atoms`` or the largest request body.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System

RelaxStream = Callable[[list[System], list[RelaxOptions], int], AsyncIterator[tuple[int, RelaxResult]]]

THROUGHPUT_WINDOW_S = 60.0
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 1, 300
RETRY_AFTER_UNKNOWN_S = 5  # before anything has finished


class QueueFull(Exception):
    def __init__(self, queued_atoms: int, request_atoms: int, max_atoms: int, retry_after_s: int):
        super().__init__(f"the relaxation queue is full: {queued_atoms} atoms queued, this request adds "
                         f"{request_atoms}, the bound is {max_atoms}; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Throughput:
    """Atoms retired per second over the last ``window_s``."""

    def __init__(self, window_s: float = THROUGHPUT_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._retired: deque[tuple[float, int]] = deque()

    def add(self, atoms: int) -> None:
        now = self.clock()
        self._retired.append((now, atoms))
        while self._retired and self._retired[0][0] < now - self.window_s:
            self._retired.popleft()

    def atoms_per_s(self) -> float | None:
        if len(self._retired) < 2:
            return None
        span = self.clock() - self._retired[0][0]
        return sum(atoms for _, atoms in self._retired) / span if span > 0 else None


class Admission:
    """One admitted request: its results as they finish; its atoms leave the queue as they do."""

    def __init__(self, queue: RelaxationQueue, systems: list[System], options: list[RelaxOptions]):
        self.queue = queue
        self.systems = systems
        self.options = options
        self._pending = set(range(len(systems)))

    async def results(self) -> AsyncIterator[tuple[int, RelaxResult]]:
        try:
            async for index, result in self.queue.relax_stream(self.systems, self.options, self.queue.batch_size):
                self._retire(index)
                self.queue.throughput.add(self.systems[index].n_atoms)
                yield index, result
        finally:
            self.release()

    def _retire(self, index: int) -> None:
        if index in self._pending:
            self._pending.discard(index)
            self.queue.queue_size_atoms -= self.systems[index].n_atoms
            self.queue.queue_size_tasks -= 1

    def release(self) -> None:
        """Take what did not finish (an error, a client gone) out of the queue's figures."""
        for index in list(self._pending):
            self._retire(index)


class RelaxationQueue:
    def __init__(self, relax_stream: RelaxStream, batch_size: int, max_atoms: int):
        self.relax_stream = relax_stream
        self.batch_size = batch_size  # the model's atom budget
        self.max_atoms = max_atoms
        self.queue_size_atoms = 0  # waiting or running, as /v1/status reports them
        self.queue_size_tasks = 0
        self.throughput = Throughput()

    def admit(self, systems: list[System], options: list[RelaxOptions]) -> Admission:
        """The request joins the queue, or QueueFull says when to come back."""
        atoms = sum(system.n_atoms for system in systems)
        if self.queue_size_atoms and self.queue_size_atoms + atoms > self.max_atoms:
            raise QueueFull(self.queue_size_atoms, atoms, self.max_atoms, self.retry_after_s(atoms))
        self.queue_size_atoms += atoms
        self.queue_size_tasks += len(systems)
        return Admission(self, systems, options)

    def retry_after_s(self, atoms: int) -> int:
        """Seconds until, at the recent throughput, enough atoms have left for this request to fit."""
        rate = self.throughput.atoms_per_s()
        if not rate:
            return RETRY_AFTER_UNKNOWN_S
        excess = self.queue_size_atoms + atoms - self.max_atoms
        return min(max(math.ceil(excess / rate), RETRY_AFTER_MIN_S), RETRY_AFTER_MAX_S)
