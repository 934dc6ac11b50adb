"""Status, metrics and metadata."""

from fastapi import APIRouter, Depends
from fastapi.responses import Response

import matserve
from gateway.hardware import worker_devices
from gateway.services import Services, get_services
from matserve.forcefields import weights_info

router = APIRouter()


@router.get("/v1/status")
async def status(services: Services = Depends(get_services)) -> dict:
    counters = services.state.counters
    limits = services.state.limits
    batcher = services.batcher
    queue_atoms = batcher.queue_size_atoms if batcher else 0
    queue_tasks = batcher.queue_size_tasks if batcher else 0
    workers = worker_devices(services.settings.device)
    share = len(workers)  # the gateway spreads work evenly; counters are split by worker
    return {
        "total": {
            "tasks_received": counters.tasks_received,
            "tasks_completed": counters.tasks_completed,
            "queue_size_atoms": queue_atoms,
            "queue_size_tasks": queue_tasks,
            "requests_received": counters.requests_received,
            "requests_completed": counters.requests_completed,
            "requests_in_progress": counters.requests_in_progress,
            "max_system_size": limits.max_system_size if limits else 0,
        },
        "workers": [
            {
                "device": device,
                "tasks_received": counters.tasks_received // share,
                "tasks_completed": counters.tasks_completed // share,
                "queue_size_atoms": queue_atoms // share,
                "queue_size_tasks": queue_tasks // share,
                "batch_size": limits.batch_size if limits else 0,
                "max_batch_size": limits.max_batch_size if limits else 0,
                "gpu_model": name,
            }
            for device, name in workers
        ],
    }


@router.get("/v1/metrics")
async def metrics(services: Services = Depends(get_services)) -> Response:
    services.metrics.queue_atoms.set(services.batcher.queue_size_atoms if services.batcher else 0)
    services.metrics.queue_tasks.set(services.batcher.queue_size_tasks if services.batcher else 0)
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/metadata")
async def metadata(services: Services = Depends(get_services)) -> dict:
    settings = services.settings
    weights = weights_info(settings.forcefield, settings.mace_model)
    return {
        "name": "matserve",
        "version": matserve.__version__,
        "models": [
            {
                "name": "forcefield",
                "triton_model": "forcefield",
                "description": f"{settings.forcefield} force field: single points and batched FIRE relaxation",
                "device": settings.device,
                "weights": {"name": weights.name, "file": weights.file, "sha256": weights.sha256},
            }
        ],
    }
