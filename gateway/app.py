"""The FastAPI application: routes, error envelope, metrics and the start-up sequence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from fastapi import FastAPI

import matserve
from gateway.batcher import AtomBatcher, log_failure
from gateway.errors import install_error_handlers
from gateway.limits import GpuMemory, MemoryProbe, ProcessTreeMemory, estimate_limits
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.middleware import RequestContextMiddleware
from gateway.routes import health, infer, system
from gateway.services import Services
from gateway.state import BatchLimits, ServiceState
from gateway.triton_client import TritonClient
from matserve.settings import Settings

log = logging.getLogger("matserve.gateway")

TRITON_MODELS = ["forcefield"]
READY_POLL_S = 0.5


def configured_limits(settings: Settings) -> BatchLimits | None:
    if settings.batch_size <= 0:
        return None
    return BatchLimits(settings.batch_size, settings.batch_size, settings.max_system_size or settings.batch_size)


async def prepare(services: Services, memory: MemoryProbe | None) -> None:
    """Wait for Triton, estimate the atom budget unless configured, then open the batching queue."""
    while not await services.triton.ready_models(services.state.models) == services.state.models:
        await asyncio.sleep(READY_POLL_S)
    limits = configured_limits(services.settings)
    if limits is None:
        if memory is None:
            raise RuntimeError("no memory probe and no MATSERVE_BATCH_SIZE: cannot size batches")
        limits = await estimate_limits(services.triton.forcefield, memory, services.settings.device == "gpu")
        if services.settings.max_system_size:
            limits = BatchLimits(limits.batch_size, limits.max_batch_size, services.settings.max_system_size)
    services.state.limits = limits
    services.batcher = AtomBatcher(services.triton.forcefield, limits.batch_size, services.settings.batch_wait_ms / 1000)
    services.batcher.start()
    log.info("ready: %s", limits)


def memory_probe(settings: Settings, triton_pid: int | None) -> MemoryProbe | None:
    if settings.device == "gpu":
        return GpuMemory(0)
    return ProcessTreeMemory(triton_pid) if triton_pid else None


def create_app(
    settings: Settings, triton_url: str, triton_pid: int | None = None, triton: TritonClient | None = None
) -> FastAPI:
    """``triton`` replaces the gRPC client (tests pass a small fake beside the real-server tests)."""
    state = ServiceState(models=list(TRITON_MODELS))
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings, state, metrics, triton or TritonClient(triton_url))
        app.state.services = services
        startup = asyncio.create_task(prepare(services, memory_probe(settings, triton_pid)), name="prepare")
        startup.add_done_callback(log_failure)
        try:
            yield
        finally:
            startup.cancel()
            if services.batcher:
                await services.batcher.stop()
            await services.triton.close()

    app = FastAPI(title="matserve", version=matserve.__version__, lifespan=lifespan, docs_url="/docs")
    install_error_handlers(app)
    for module in (health, system, infer):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware, state=state, max_body_bytes=settings.max_body_bytes)
    app.state.service_state = state
    return app
