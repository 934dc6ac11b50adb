"""Status, metrics and metadata."""

import hashlib
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse, Response

import matserve
from gateway.hardware import worker_devices
from gateway.openapi import PROMETHEUS_TEXT, error_responses
from gateway.services import Services, get_services
from matserve.alignn.checkpoint import EMBEDDED_DIR, checkpoint_file
from matserve.forcefields import weights_info
from matserve.forcefields.base import sha256_file
from matserve.generator.service import EMBEDDED_SMALL, configured_checkpoints
from matserve.properties.plmf.model import MODELS as PLMF_MODELS

router = APIRouter()


@router.get("/v1/status", summary="Queue and task counters, per worker as the BGR NIM reports them",
            responses=error_responses())
async def status(services: Services = Depends(get_services)) -> dict:
    counters = services.state.counters
    limits = services.state.limits
    queue = services.relax_queue
    queue_atoms = queue.queue_size_atoms if queue else 0
    queue_tasks = queue.queue_size_tasks if queue else 0
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
    weights = weights_info(settings.forcefield, settings.forcefield_modal)
    forcefield_weights = {"name": weights.name, "file": weights.file, "sha256": weights.sha256}
    forcefield = {
        "name": "forcefield",
        "triton_model": "forcefield",
        "description": f"{settings.forcefield} force field: single points and batched FIRE/FIRE2 relaxation",
        "device": settings.device,
        "weights": forcefield_weights,
    }
    generators = [
        {"name": f"generator/{name}", "triton_model": "generator", "description": "CrystaLLM-format GPT",
         "device": settings.device, "weights": _file_weights(path, "embedded" if path == EMBEDDED_SMALL else "configured")}
        for name, path in sorted(configured_checkpoints(settings.generator_small, settings.generator_medium,
                                                        settings.generator_large).items())
    ]
    alignn_folder = Path(settings.alignn_checkpoint) if settings.alignn_checkpoint else EMBEDDED_DIR
    alignn = {"name": "alignn", "triton_model": "alignn", "description": "ALIGNN formation energy per atom",
              "device": settings.device,
              "weights": _file_weights(checkpoint_file(alignn_folder),
                                       "embedded" if alignn_folder == EMBEDDED_DIR else "configured")}
    mfd = {"name": "mfd", "triton_model": "mfd", "device": settings.device, "weights": forcefield_weights,
           "description": f"harmonic phonons (Cv, Fvib, Svib at 300 K) with the {settings.forcefield} force field"}
    plmf = {"name": "plmf", "triton_model": "plmf", "device": "cpu", "weights": _plmf_weights(),
            "description": "AFLOW-ML plmf fields: LightGBM over Voronoi-fragment and composition features"}
    return {"name": "matserve", "version": matserve.__version__,
            "models": [forcefield, *generators, alignn, mfd, plmf]}


def _plmf_weights() -> dict:
    """The committed LightGBM models, one checksum over their files' names and checksums."""
    files = sorted(PLMF_MODELS.glob("*.txt.gz"))
    manifest = "".join(f"{path.name} {sha256_file(path)}\n" for path in files)
    return {"name": f"embedded plmf/models ({len(files)} LightGBM models)", "file": "models/*.txt.gz",
            "sha256": hashlib.sha256(manifest.encode()).hexdigest()}


def _file_weights(path: Path, origin: str) -> dict:
    """Provenance of a checkpoint file; a configured one that is missing has no checksum (null)."""
    checksum = sha256_file(path) if path.is_file() else None
    return {"name": f"{origin} {path.parent.name}/{path.name}", "file": path.name, "sha256": checksum}
