"""The FastAPI application: routes, error envelope, metrics and the start-up sequence."""

from __future__ import annotations

import asyncio
import functools
import contextlib
import logging
import socket
from typing import AsyncIterator

from fastapi import FastAPI

import matserve
from gateway.admission import Bound
from gateway.errors import install_error_handlers
from gateway.limits import GpuMemory, MemoryProbe, ProcessTreeMemory, estimate_limits
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.middleware import RequestContextMiddleware
from gateway.openapi import install_docs, install_openapi
from gateway.jobs.runner import JobRunner
from gateway.jobs.store import JobStore
from gateway.property_models import PropertyModel, load_registry
from gateway.relax_queue import RelaxationQueue
from gateway.routes import generate, health, infer, playground, predict, system
from gateway.services import Services
from gateway.state import BatchLimits, ServiceState
from gateway.structure_input import system_from_json
from gateway.triton_client import TritonClient, TritonUnavailable
from matserve.settings import Settings

log = logging.getLogger("matserve.gateway")

GENERATOR_MODEL = "generator"
READY_POLL_S = 0.5
QUEUE_BUDGETS = 4  # default bound on relaxation atoms waiting or running, in atom budgets


def configured_limits(settings: Settings) -> BatchLimits | None:
    if settings.batch_size <= 0:
        return None
    return BatchLimits(settings.batch_size, settings.batch_size, settings.max_system_size or settings.batch_size)


async def prepare(services: Services, memory: MemoryProbe | None) -> None:
    """Wait for Triton, estimate each force field's atom budget unless configured, then open their queues."""
    while not await services.triton.ready_models(services.state.models) == services.state.models:
        await asyncio.sleep(READY_POLL_S)
    settings = services.settings
    for name in settings.served_forcefields:
        triton_model = settings.forcefield_triton_model(name)
        limits = configured_limits(settings)
        if limits is None:
            if memory is None:
                raise RuntimeError("no memory probe and no MATSERVE_BATCH_SIZE: cannot size batches")
            run_batch = functools.partial(services.triton.forcefield, model=triton_model)
            limits = await estimate_limits(run_batch, memory, settings.device == "gpu")
            if settings.max_system_size:
                limits = BatchLimits(limits.atom_budget, limits.max_atom_budget, settings.max_system_size)
        services.state.forcefield_limits[name] = limits
        max_atoms = settings.queue_atoms or QUEUE_BUDGETS * limits.atom_budget
        relax_stream = functools.partial(services.triton.relax_stream, model=triton_model)
        services.relax_queues[name] = RelaxationQueue(relax_stream, limits.atom_budget, max_atoms)
        log.info("%s ready: %s", name, limits)
    services.state.limits = services.state.forcefield_limits[settings.forcefield]
    await services.jobs.start()


def log_failure(task: asyncio.Task) -> None:
    """Background tasks must not die silently."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())


def memory_probe(settings: Settings, triton_pid: int | None) -> MemoryProbe | None:
    if settings.device == "gpu":
        return GpuMemory(0)
    return ProcessTreeMemory(triton_pid) if triton_pid else None


def job_store(settings: Settings) -> JobStore:
    if settings.redis_url:
        from gateway.jobs.redis_store import RedisJobStore

        return RedisJobStore(settings.redis_url)
    from gateway.jobs.sqlite_store import SQLiteJobStore

    return SQLiteJobStore(settings.data_dir / "jobs.sqlite3")


def job_runner(
    settings: Settings, triton: TritonClient, property_models: dict[str, PropertyModel], store: JobStore
) -> JobRunner:
    async def run_model(model: str, structure: dict) -> tuple[str, dict]:
        if model not in property_models:  # a job another replica took (replicas sharing a store serve the same)
            raise TritonUnavailable(model, "not served by this replica")
        return await triton.property(property_models[model], system_from_json(structure))

    replica = settings.replica_id or f"{socket.gethostname()}:{settings.port}"
    return JobRunner(store, run_model, replica, workers=settings.job_workers, ttl_s=settings.job_ttl_s,
                     max_jobs=settings.queue_jobs)


def create_app(
    settings: Settings, triton_url: str, triton_pid: int | None = None, triton: TritonClient | None = None
) -> FastAPI:
    """``triton`` replaces the gRPC client (tests pass a small fake beside the real-server tests)."""
    served = settings.served_models
    property_models = {name: model for name, model in load_registry().items() if model.triton_model in served}
    forcefields = [settings.forcefield_triton_model(name) for name in settings.served_forcefields]
    generator = [GENERATOR_MODEL] if GENERATOR_MODEL in served else []
    state = ServiceState(models=[*forcefields, *generator, *(m.triton_model for m in property_models.values())])
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = triton or TritonClient(triton_url)
        store = job_store(settings)
        runner = job_runner(settings, client, property_models, store)
        sequences = Bound("generation", "sequences", settings.queue_sequences)
        services = Services(settings, state, metrics, client, property_models, runner, sequences)
        app.state.services = services
        startup = asyncio.create_task(prepare(services, memory_probe(settings, triton_pid)), name="prepare")
        startup.add_done_callback(log_failure)
        try:
            yield
        finally:
            startup.cancel()
            await runner.stop()
            await store.close()
            await services.triton.close()

    # /docs and /redoc load their scripts from an installed wheel, not a CDN (gateway/openapi.py)
    app = FastAPI(title="matserve", version=matserve.__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    routes = (health, system, infer, predict, *([generate] if generator else []), playground)
    for module in routes:  # without the generator, /v1/generate is an unknown route (404)
        app.include_router(module.router)
    install_docs(app)
    install_openapi(app, path_enums={"model": sorted(property_models)})
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware, state=state, max_body_bytes=settings.max_body_bytes)
    app.state.service_state = state
    return app
