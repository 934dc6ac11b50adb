"""One loop that owns the force field's running batch and serves many requests at once.

In-flight batching, as vLLM's scheduler does it for sequences: requests (jobs) arrive from any
thread; the loop, on its own thread, admits their structures between optimiser steps up to the
atom budget, steps the whole batch once, and reports each structure to its job the step it is
retired. A job is answered the moment its own last structure is retired, whatever else runs;
a job whose caller went away is dropped from the batch at the next step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from matserve.forcefields import ForceField
from matserve.relax import Relaxer, RelaxOptions, RelaxResult
from matserve.structures import System

log = logging.getLogger("matserve.relax")

OnResult = Callable[[int, RelaxResult, bool], None]  # (position in the job, result, whether it was the job's last)


def never_cancelled() -> bool:
    return False


@dataclass(eq=False)  # identity: a job is a key of the running batch
class RelaxJob:
    systems: list[System]
    options: list[RelaxOptions]
    on_result: OnResult
    on_error: Callable[[Exception], None]
    is_cancelled: Callable[[], bool] = never_cancelled
    atom_budget: int = 0  # the caller's atom budget; 0 keeps the scheduler's
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.systems)

    def keys(self) -> set[tuple[RelaxJob, int]]:
        return {(self, position) for position in range(len(self.systems))}


class RelaxScheduler:
    def __init__(self, forcefield: ForceField, atom_budget: int = 0):
        self.relaxer = Relaxer(forcefield, atom_budget)
        self._inbox: list[RelaxJob] = []
        self._jobs: set[RelaxJob] = set()  # admitted to the relaxer, not yet answered
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def jobs(self) -> int:
        return len(self._jobs) + len(self._inbox)

    def submit(self, job: RelaxJob) -> None:
        with self._wake:
            self._inbox.append(job)
            self._wake.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relax-scheduler", daemon=True)
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
                while not self._inbox and self.relaxer.idle and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
            self.step()

    def step(self) -> None:
        """Admit what arrived, drop what was cancelled, move the batch one step, answer what finished."""
        self._admit_arrivals()
        self._drop_cancelled()
        try:
            retired = self.relaxer.step()
        except Exception as error:  # noqa: BLE001 - the loop must outlive one failed step
            log.exception("force-field step failed; failing the %d jobs in the batch", len(self._jobs))
            self._fail_all(error)
            return
        for (job, position), result in retired:
            job.remaining -= 1
            last = job.remaining == 0
            if last:
                self._jobs.discard(job)
            try:
                job.on_result(position, result, last)
            except Exception:  # noqa: BLE001 - a caller that cannot be answered is dropped, not the loop
                log.exception("could not answer a relaxation job; dropping it")
                self._drop(job)

    def _admit_arrivals(self) -> None:
        with self._wake:
            arrived, self._inbox = self._inbox, []
        for job in arrived:
            if job.atom_budget:
                self.relaxer.atom_budget = job.atom_budget
            self._jobs.add(job)
            for position, (system, options) in enumerate(zip(job.systems, job.options)):
                self.relaxer.add((job, position), system, options)

    def _drop_cancelled(self) -> None:
        for job in [job for job in self._jobs if job.is_cancelled()]:
            self._drop(job)
            log.info("relaxation cancelled by its caller: %d of %d structures left the batch",
                     job.remaining, len(job.systems))

    def _drop(self, job: RelaxJob) -> None:
        self._jobs.discard(job)
        self.relaxer.remove(job.keys())

    def _fail_all(self, error: Exception) -> None:
        jobs, self._jobs = self._jobs, set()
        for job in jobs:
            self.relaxer.remove(job.keys())
            try:
                job.on_error(error)
            except Exception:  # noqa: BLE001
                log.exception("could not report a failed relaxation job")
