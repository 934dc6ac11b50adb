"""Admission control for relaxations, and the queue figures of ``/v1/status``.

The force-field model batches in flight across requests (``matserve.relax_scheduler``): one
queue, in the model, decides what runs. The gateway only decides whether a request may join
it, by the atoms already waiting or running (``gateway.admission.Bound``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from gateway.admission import Bound
from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System

RelaxStream = Callable[[list[System], list[RelaxOptions], int], AsyncIterator[tuple[int, RelaxResult]]]


class Admission:
    """One admitted request: its results as they finish; its atoms leave the queue as they do."""

    def __init__(self, queue: RelaxationQueue, systems: list[System], options: list[RelaxOptions]):
        self.queue = queue
        self.systems = systems
        self.options = options
        self._pending = set(range(len(systems)))

    async def results(self) -> AsyncIterator[tuple[int, RelaxResult]]:
        try:
            async for index, result in self.queue.relax_stream(self.systems, self.options, self.queue.atom_budget):
                self._retire(index, finished=True)
                yield index, result
        finally:
            self.release()

    def _retire(self, index: int, finished: bool) -> None:
        if index in self._pending:
            self._pending.discard(index)
            self.queue.atoms.give_back(self.systems[index].n_atoms, finished)
            self.queue.queue_size_tasks -= 1

    def release(self) -> None:
        """Take what did not finish (an error, a client gone) out of the queue's figures."""
        for index in list(self._pending):
            self._retire(index, finished=False)


class RelaxationQueue:
    def __init__(self, relax_stream: RelaxStream, atom_budget: int, max_atoms: int):
        self.relax_stream = relax_stream
        self.atom_budget = atom_budget  # the model's atoms per step
        self.atoms = Bound("relaxation", "atoms", max_atoms)
        self.queue_size_tasks = 0  # structures waiting or running, as /v1/status reports them

    @property
    def queue_size_atoms(self) -> int:
        return self.atoms.held

    def admit(self, systems: list[System], options: list[RelaxOptions]) -> Admission:
        """The request joins the queue, or QueueFull says when to come back."""
        self.atoms.take(sum(system.n_atoms for system in systems))
        self.queue_size_tasks += len(systems)
        return Admission(self, systems, options)
