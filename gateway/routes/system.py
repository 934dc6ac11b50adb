"""Status, metrics and metadata."""

from dataclasses import asdict

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse, Response

import matserve
from gateway.hardware import worker_devices
from gateway.openapi import PROMETHEUS_TEXT, error_responses
from gateway.services import Services, get_services
from matserve.alignn.checkpoint import weights_info as alignn_weights_info
from matserve.contract import WeightsInfo
from matserve.forcefields import weights_info as forcefield_weights_info
from matserve.generator.service import configured_checkpoints
from matserve.generator.service import weights_info as generator_weights_info
from matserve.properties.plmf.model import weights_info as plmf_weights_info

router = APIRouter()


@router.get("/v1/status", summary="Queue and task counters, per worker as the BGR NIM reports them",
            responses=error_responses())
async def status(services: Services = Depends(get_services)) -> dict:
    counters = services.state.counters
    limits = services.state.limits
    queues = services.relax_queues.values()
    queue_atoms = sum(queue.queue_size_atoms for queue in queues)
    queue_tasks = sum(queue.queue_size_tasks for queue in queues)
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
                "batch_size": limits.atom_budget if limits else 0,
                "max_batch_size": limits.max_atom_budget if limits else 0,
                "gpu_model": name,
            }
            for device, name in workers
        ],
        "forcefields": [_forcefield_status(name, services) for name in services.settings.served_forcefields],
    }


def _forcefield_status(name: str, services: Services) -> dict:
    """matserve extension: each served force field's own budget and queue (the default first)."""
    limits = services.state.forcefield_limits.get(name)
    queue = services.relax_queues.get(name)
    return {
        "name": name,
        "triton_model": services.settings.forcefield_triton_model(name),
        "batch_size": limits.atom_budget if limits else 0,
        "max_batch_size": limits.max_atom_budget if limits else 0,
        "max_system_size": limits.max_system_size if limits else 0,
        "queue_size_atoms": queue.queue_size_atoms if queue else 0,
        "queue_size_tasks": queue.queue_size_tasks if queue else 0,
    }


@router.get("/v1/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={**PROMETHEUS_TEXT, **error_responses()})
async def metrics(services: Services = Depends(get_services)) -> Response:
    queue = services.relax_queue
    services.metrics.queue_atoms.set(queue.queue_size_atoms if queue else 0)
    services.metrics.queue_tasks.set(queue.queue_size_tasks if queue else 0)
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/metadata", summary="Served models and the provenance of their weights", responses=error_responses())
async def metadata(services: Services = Depends(get_services)) -> dict:
    settings = services.settings
    device = settings.device
    forcefield_weights = forcefield_weights_info(settings.forcefield, *settings.forcefield_options(settings.forcefield))
    checkpoints = configured_checkpoints(settings.generator_small, settings.generator_medium, settings.generator_large)
    served = set(settings.served_models)
    models = [
        _model("forcefield" if name == settings.forcefield else f"forcefield/{name}",
               settings.forcefield_triton_model(name), device,
               forcefield_weights_info(name, *settings.forcefield_options(name)),
               f"{name} force field: single points and batched FIRE/FIRE2 relaxation")
        for name in settings.served_forcefields
    ]
    if "generator" in served:
        models += [_model(f"generator/{name}", "generator", device, generator_weights_info(path), "CrystaLLM-format GPT")
                   for name, path in sorted(checkpoints.items())]
    if "alignn" in served:
        models.append(_model("alignn", "alignn", device, alignn_weights_info(settings.alignn_checkpoint),
                             "ALIGNN formation energy per atom"))
    if "mfd" in served:
        models.append(_model("mfd", "mfd", device, forcefield_weights,
                             f"harmonic phonons (Cv, Fvib, Svib at 300 K) with the {settings.forcefield} force field"))
    if "plmf" in served:
        models.append(_model("plmf", "plmf", "cpu", plmf_weights_info(),
                             "AFLOW-ML plmf fields: LightGBM over Voronoi-fragment and composition features"))
    return {"name": "matserve", "version": matserve.__version__, "models": models}


def _model(name: str, triton_model: str, device: str, weights: WeightsInfo, description: str) -> dict:
    return {"name": name, "triton_model": triton_model, "description": description, "device": device,
            "weights": asdict(weights)}
