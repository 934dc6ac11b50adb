"""The loop every in-flight-batching model runs (the force field's relaxations, the generator's
sequences), as vLLM's scheduler does it: one thread owns the running batch; jobs arrive from any
thread; every step takes what arrived, drops what its callers cancelled, moves the batch once and
answers each part of a job the step it ends. What the batch holds and how it moves is the
subclass's (``RelaxScheduler``, ``GenerationScheduler``).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any, Protocol

log = logging.getLogger("matserve.scheduler")


def never_cancelled() -> bool:
    return False


def nothing() -> None:
    pass


class Job(Protocol):
    """What the loop needs of a job; each scheduler's job dataclass adds its own work."""

    remaining: int  # parts not yet answered
    on_result: Callable[[int, Any, bool], None]  # (part's index in the job, result, whether it was the last)
    on_error: Callable[[Exception], None]
    is_cancelled: Callable[[], bool]
    on_cancelled: Callable[[], None]  # after it left the batch (Triton: close the request)

    def keys(self) -> set[tuple[Any, int]]: ...


Ended = list[tuple[tuple[Any, int], Any]]  # ((job, part index), result) of the parts that ended in a step


class SchedulerLoop(ABC):
    def __init__(self, name: str):
        self.name = name
        self._inbox: list[Job] = []
        self._jobs: set[Job] = set()  # taken from the inbox, not yet answered
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    @abstractmethod
    def idle(self) -> bool:
        """Nothing waiting or running."""

    @abstractmethod
    def _take(self, job: Job) -> None:
        """Queue a job's parts for the batch."""

    @abstractmethod
    def _remove(self, keys: set[Hashable]) -> None:
        """Take these parts out of the waiting queue and the batch."""

    @abstractmethod
    def _step_batch(self) -> Ended:
        """Admit waiting parts, move the batch one step; the parts that ended."""

    @abstractmethod
    def _reset(self) -> None:
        """Empty the queue and the batch (after a failed step)."""

    @property
    def jobs(self) -> int:
        return len(self._jobs) + len(self._inbox)

    def submit(self, job: Job) -> None:
        with self._wake:
            self._inbox.append(job)
            self._wake.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._inbox and self.idle and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
            self.step()

    def step(self) -> None:
        """Take what arrived, drop what was cancelled, move the batch once, answer what ended."""
        with self._wake:
            arrived, self._inbox = self._inbox, []
        for job in arrived:
            self._jobs.add(job)
            self._take(job)
        self._drop_cancelled()
        try:
            ended = self._step_batch()
        except Exception as error:  # noqa: BLE001 - the loop must outlive one failed step
            log.exception("%s step failed; failing its %d jobs", self.name, len(self._jobs))
            self._fail_all(error)
            return
        for (job, index), result in ended:
            if job not in self._jobs:  # dropped earlier in this step
                continue
            job.remaining -= 1
            last = job.remaining == 0
            if last:
                self._jobs.discard(job)
            try:
                job.on_result(index, result, last)
            except Exception:  # noqa: BLE001 - a caller that cannot be answered is dropped, not the loop
                log.exception("%s: could not answer a job; dropping it", self.name)
                self._drop(job)

    def _drop_cancelled(self) -> None:
        for job in [job for job in self._jobs if job.is_cancelled()]:
            self._drop(job)
            log.info("%s: cancelled by its caller: %d parts left the batch", self.name, job.remaining)
            try:
                job.on_cancelled()
            except Exception:  # noqa: BLE001
                log.exception("%s: could not close a cancelled job", self.name)

    def _drop(self, job: Job) -> None:
        self._jobs.discard(job)
        self._remove(job.keys())

    def _fail_all(self, error: Exception) -> None:
        jobs, self._jobs = self._jobs, set()
        self._reset()
        for job in jobs:
            try:
                job.on_error(error)
            except Exception:  # noqa: BLE001
                log.exception("%s: could not report a failed job", self.name)
