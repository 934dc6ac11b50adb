"""Everything a route needs, built once per app and reached through ``request.app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from gateway.admission import Bound
from gateway.errors import NotReady
from gateway.jobs.runner import JobRunner
from gateway.property_models import PropertyModel
from gateway.relax_queue import RelaxationQueue
from gateway.metrics import Metrics
from gateway.state import ServiceState
from gateway.triton_client import TritonClient
from matserve.contract import element_problem
from matserve.forcefields import supported_numbers
from matserve.forcefields.registry import forcefield_label
from matserve.relax import RelaxResult
from matserve.settings import Settings


@dataclass
class Services:
    settings: Settings
    state: ServiceState
    metrics: Metrics
    triton: TritonClient
    property_models: dict[str, PropertyModel]
    jobs: JobRunner
    sequences: Bound  # generation sequences waiting or running
    relax_queues: dict[str, RelaxationQueue] = field(default_factory=dict)  # by force field, once its budget is known

    @property
    def relax_queue(self) -> RelaxationQueue | None:
        """The default force field's queue (None until its atom budget is known)."""
        return self.relax_queues.get(self.settings.forcefield)

    async def ready_models(self) -> list[str]:
        if self.state.triton_failed:
            return []
        return await self.triton.ready_models(self.state.models)

    async def readiness(self) -> tuple[list[str], bool]:
        """(the Triton models not ready, whether the service is ready), from one round of Triton queries."""
        alive = set(await self.ready_models())
        missing = [model for model in self.state.models if model not in alive]
        served = self.settings.served_forcefields
        prepared = not self.state.draining and self.state.limits is not None and len(self.relax_queues) == len(served)
        return missing, prepared and not missing

    def open_relax_queue(self, forcefield: str = "") -> RelaxationQueue:
        """A served force field's relaxation queue (empty: the default's), or 503 while draining or
        before its atom budget is known."""
        queue = self.relax_queues.get(forcefield or self.settings.forcefield)
        if queue is None or self.state.draining:
            raise NotReady("not ready: " + ("draining" if self.state.draining else "estimating batch sizes"))
        return queue

    def structure_finished(self, result: RelaxResult) -> None:
        """Count a relaxed structure in /v1/status and the metrics, whichever route asked for it."""
        self.state.counters.tasks_completed += 1
        self.metrics.structures.labels("converged" if result.converged else "not_converged").inc()

    def size_problem(self, n_atoms: int, forcefield: str = "") -> str | None:
        """Why a structure is too large for a force field (empty: the default), or None."""
        limits = self.state.forcefield_limits.get(forcefield) if forcefield else self.state.limits
        if limits is not None and n_atoms > limits.max_system_size:
            return f"structure has {n_atoms} atoms; max_system_size is {limits.max_system_size}"
        return None

    def element_problem(self, numbers: list[int], forcefield: str = "") -> str | None:
        """Why a served force field (empty: the default) cannot relax these atomic numbers (None: it can);
        property models check their own elements (``PropertyModel.element_problem``)."""
        name = forcefield or self.settings.forcefield
        return element_problem(forcefield_label(name), numbers, supported_numbers(name))


def get_services(request: Request) -> Services:
    return request.app.state.services
