"""Property predictions as the AFLOW-ML API serves them, under /v1, plus a synchronous route.

``POST /v1/{model}/prediction`` → ``{"id", "model", "results_endpoint"}`` (``results_endpoint`` is
relative to the API base ``/v1``, as AFLOW-ML's is to its own base);
``GET /v1/prediction/result/{id}`` → ``{"status", "description"}``, plus ``model``,
``citation`` and the ``ml_*`` fields on SUCCESS. ``POST /v1/{model}/predict`` answers directly.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from gateway.auth import require_api_key
from gateway.errors import NotFound, Unprocessable
from gateway.jobs.store import JobStatus
from gateway.openapi import STRUCTURE_FILE_BODY, error_responses
from gateway.property_models import PropertyModel
from gateway.services import Services, get_services
from gateway.structure_input import parse_or_422, structure_text, system_to_json
from matserve.structures import System, isolated_atoms

router = APIRouter()

FILE_400 = "Malformed JSON body, or a file that is not UTF-8 text"
FILE_422 = "No `file`, a file that is not a readable POSCAR or CIF, or a structure the model cannot take"


def model_or_404(name: str, services: Services) -> PropertyModel:
    model = services.property_models.get(name)
    if model is None:
        available = ", ".join(sorted(services.property_models)) or "none"
        raise NotFound(f"model {name!r} is not available; available models: {available}",
                       [{"loc": ["path", "model"], "msg": f"unknown model {name!r}", "type": "not_found"}])
    return model


def _invalid_file(message: str) -> Unprocessable:
    return Unprocessable(message, [{"loc": ["body", "file"], "msg": message, "type": "value_error"}])


def isolation_problem(system: System, model: PropertyModel) -> str | None:
    if model.neighbour_cutoff is None:
        return None
    lonely = isolated_atoms(system, model.neighbour_cutoff)
    if lonely:
        return f"atom {lonely[0]} has no neighbour within {model.neighbour_cutoff:g} Å, which {model.name} needs"
    return None


def checked_system(text: str, services: Services, model: PropertyModel) -> System:
    """The structure of an uploaded file, or a 422 saying why the model cannot take it."""
    system = parse_or_422(text)
    problem = (services.size_problem(system.n_atoms)
               or model.element_problem(system.numbers.tolist(), services.settings.forcefield)
               or isolation_problem(system, model))
    if problem:
        raise _invalid_file(problem)
    return system


async def read_structure(request: Request, services: Services, model: PropertyModel) -> System:
    """Parsing and the neighbour search run in a worker thread: a large cell must not stall the event loop."""
    return await asyncio.to_thread(checked_system, await structure_text(request), services, model)


@router.post("/v1/{model}/prediction", dependencies=[Depends(require_api_key)],
             summary="Submit an asynchronous property prediction (AFLOW-ML)", openapi_extra=STRUCTURE_FILE_BODY,
             responses=error_responses(400, 401, 404, 422, 503, s400=FILE_400, s404="Unknown model",
                                       s422=FILE_422))
async def submit(model: str, request: Request, services: Services = Depends(get_services)) -> dict:
    property_model = model_or_404(model, services)
    system = await read_structure(request, services, property_model)
    job = await services.jobs.submit(property_model.name, system_to_json(system))
    return {"id": job.id, "model": property_model.name, "results_endpoint": f"/prediction/result/{job.id}"}


@router.get("/v1/prediction/result/{job_id}", summary="A prediction job's status, and its results once done",
            responses=error_responses(404, s404="Unknown or expired job"))
async def result(job_id: str, services: Services = Depends(get_services)) -> dict:
    job = await services.jobs.store.get(job_id)
    if job is None:
        raise NotFound(f"no prediction job {job_id!r}",
                       [{"loc": ["path", "job_id"], "msg": "unknown or expired job", "type": "not_found"}])
    body: dict = {"status": job.status.value, "description": job.description}
    if job.status == JobStatus.SUCCESS:
        property_model = services.property_models.get(job.model)
        body |= {"model": job.model, "citation": property_model.citation if property_model else "", **job.result}
    return body


@router.post("/v1/{model}/predict", dependencies=[Depends(require_api_key)],
             summary="Predict properties and answer at once", openapi_extra=STRUCTURE_FILE_BODY,
             responses=error_responses(400, 401, 404, 422, 503, s400=FILE_400, s404="Unknown model",
                                       s422=FILE_422))
async def predict_now(model: str, request: Request, services: Services = Depends(get_services)) -> dict:
    property_model = model_or_404(model, services)
    system = await read_structure(request, services, property_model)
    description, fields = await services.triton.property(property_model, system)
    return {"status": "SUCCESS", "description": description, "model": property_model.name,
            "citation": property_model.citation, **fields}
