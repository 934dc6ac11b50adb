"""Everything a route needs, built once per app and reached through ``request.app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gateway.admission import Bound
from gateway.jobs.runner import JobRunner
from gateway.property_models import PropertyModel
from gateway.relax_queue import RelaxationQueue
from gateway.metrics import Metrics
from gateway.state import ServiceState
from gateway.triton_client import TritonClient
from matserve.contract import element_problem
from matserve.forcefields import supported_numbers
from matserve.forcefields.registry import forcefield_label
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
    relax_queue: RelaxationQueue | None = None  # exists once the atom budget is known

    async def ready_models(self) -> list[str]:
        if self.state.triton_failed:
            return []
        return await self.triton.ready_models(self.state.models)

    async def readiness(self) -> tuple[int, bool]:
        """(models ready in Triton, whether the service is ready), from one round of Triton queries."""
        alive = len(await self.ready_models())
        prepared = not self.state.draining and self.state.limits is not None and self.relax_queue is not None
        return alive, prepared and alive == len(self.state.models)

    def size_problem(self, n_atoms: int) -> str | None:
        limits = self.state.limits
        if limits is not None and n_atoms > limits.max_system_size:
            return f"structure has {n_atoms} atoms; max_system_size is {limits.max_system_size}"
        return None

    def element_problem(self, numbers: list[int]) -> str | None:
        """Why the served force field cannot relax these atomic numbers (None: it can); property
        models check their own elements (``PropertyModel.element_problem``)."""
        name = self.settings.forcefield
        return element_problem(forcefield_label(name), numbers, supported_numbers(name))


def get_services(request: Request) -> Services:
    return request.app.state.services
