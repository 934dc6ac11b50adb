"""Everything a route needs, built once per app and reached through ``request.app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gateway.batcher import AtomBatcher
from gateway.jobs.runner import JobRunner
from gateway.property_models import PropertyModel
from gateway.metrics import Metrics
from gateway.state import ServiceState
from gateway.triton_client import TritonClient
from matserve.settings import Settings


@dataclass
class Services:
    settings: Settings
    state: ServiceState
    metrics: Metrics
    triton: TritonClient
    property_models: dict[str, PropertyModel]
    jobs: JobRunner
    batcher: AtomBatcher | None = None  # exists once the atom budget is known

    async def ready_models(self) -> list[str]:
        if self.state.triton_failed:
            return []
        return await self.triton.ready_models(self.state.models)

    async def is_ready(self) -> bool:
        if self.state.draining or self.state.limits is None or self.batcher is None:
            return False
        return len(await self.ready_models()) == len(self.state.models)


def get_services(request: Request) -> Services:
    return request.app.state.services
