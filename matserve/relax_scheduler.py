"""The force field's scheduler: one running batch of relaxations serving many requests at once.

Requests (jobs) arrive from any thread; the loop (``SchedulerLoop``), on its own thread, admits
their structures between optimiser steps up to the atom budget, steps the whole batch once, and
reports each structure to its job the step it is retired. A job is answered the moment its own
last structure is retired, whatever else runs; a job whose caller went away is dropped from the
batch at the next step.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from matserve.forcefields import ForceField
from matserve.relax import Relaxer, RelaxOptions, RelaxResult
from matserve.scheduler_loop import Ended, SchedulerLoop, never_cancelled, nothing
from matserve.structures import System

OnResult = Callable[[int, RelaxResult, bool], None]  # (position in the job, result, whether it was the job's last)


@dataclass(eq=False)  # identity: a job is part of its structures' keys
class RelaxJob:
    systems: list[System]
    options: list[RelaxOptions]
    on_result: OnResult
    on_error: Callable[[Exception], None]
    is_cancelled: Callable[[], bool] = never_cancelled
    on_cancelled: Callable[[], None] = nothing  # after it left the batch (Triton: close the request)
    atom_budget: int = 0  # the caller's atom budget; 0 keeps the scheduler's
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.systems)

    def keys(self) -> set[tuple[RelaxJob, int]]:
        return {(self, position) for position in range(len(self.systems))}


class RelaxScheduler(SchedulerLoop):
    def __init__(self, forcefield: ForceField, atom_budget: int = 0):
        super().__init__("relax")
        self.relaxer = Relaxer(forcefield, atom_budget)

    @property
    def idle(self) -> bool:
        return self.relaxer.idle

    def _take(self, job: RelaxJob) -> None:
        if job.atom_budget:
            self.relaxer.atom_budget = job.atom_budget
        for position, (system, options) in enumerate(zip(job.systems, job.options)):
            self.relaxer.add((job, position), system, options)

    def _remove(self, keys: set[Hashable]) -> None:
        self.relaxer.remove(keys)

    def _step_batch(self) -> Ended:
        return self.relaxer.step()

    def _reset(self) -> None:
        self.relaxer = Relaxer(self.relaxer.forcefield, self.relaxer.atom_budget)
