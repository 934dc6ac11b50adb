"""``POST /v1/infer``: batched geometry relaxation, as NVIDIA's BGR NIM serves it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from gateway.auth import require_api_key
from gateway.deadline import DeadlinePassed, before, deadline_after
from gateway.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, unless_disconnected
from gateway.errors import GatewayTimeout, Unprocessable
from gateway.openapi import error_responses
from gateway.relax_queue import Admission
from gateway.schemas import AtomicData, InferRequest, InferResponse, OptimizationResult
from gateway.services import Services, get_services
from gateway.triton_client import TritonRejected, TritonUnavailable
from matserve.forcefields import EV_PER_A3_TO_KBAR, entry
from matserve.relax import RelaxOptions, RelaxResult
from matserve.settings import Settings
from matserve.structures import MIN_DISTANCE, System, isolated_atoms, minimum_distance

router = APIRouter()

NDJSON = "application/x-ndjson"


def _invalid(index: int, field: str, message: str, error_type: str = "value_error") -> Unprocessable:
    return Unprocessable(
        f"atoms.{index}.{field}: {message}",
        [{"loc": ["body", "atoms", index, field], "msg": message, "type": error_type}],
    )


def chosen_forcefield(body: InferRequest, services: Services) -> str:
    """The served force field the request names (default: the first), or 422 naming those served."""
    served = services.settings.served_forcefields
    if body.model is None:
        return served[0]
    if body.model not in served:
        message = f"force field {body.model!r} is not served here; served: {', '.join(served)}"
        raise Unprocessable(f"model: {message}", [{"loc": ["body", "model"], "msg": message, "type": "value_error"}])
    return body.model


def to_system(index: int, atoms: AtomicData, services: Services, name: str) -> System:
    """One request structure as a System for force field ``name``, or 422 naming what is wrong with it."""
    too_large = services.size_problem(len(atoms.numbers), name)
    if too_large:
        raise _invalid(index, "numbers", too_large)
    unsupported = services.element_problem(list(atoms.numbers), name)
    if unsupported:
        raise _invalid(index, "numbers", unsupported)
    forcefield = entry(name)
    if (atoms.charge != 0 or atoms.mult != 1) and not forcefield.uses_charge_and_spin:
        field = "charge" if atoms.charge != 0 else "mult"
        raise _invalid(index, field, f"force field {name!r} cannot use charge or spin multiplicity; "
                                     "send charge 0 and mult 1")
    cell = np.array(atoms.cell if atoms.cell is not None else np.zeros(9)).reshape(3, 3)
    pbc = np.array(atoms.periodic)
    if pbc.any() and abs(np.linalg.det(cell)) < 1e-6:
        raise _invalid(index, "cell", "cell vectors are degenerate (zero volume)")
    system = System(np.array(atoms.coord).reshape(-1, 3), atoms.numbers, cell, pbc, atoms.active_mask)
    closest = minimum_distance(system)
    if closest < MIN_DISTANCE:
        raise _invalid(index, "coord", f"two atoms are {closest:.3f} Å apart; the minimum is {MIN_DISTANCE} Å")
    cutoff = forcefield.neighbour_cutoff
    lonely = isolated_atoms(system, cutoff) if cutoff else []
    if lonely:  # found by fuzzing: it failed the whole running batch with 503
        raise _invalid(index, "coord", f"atom {lonely[0]} has no neighbour within {cutoff:g} Å, which the "
                                       f"{name} force field needs")
    return system


def to_result(atoms: AtomicData, result: RelaxResult) -> OptimizationResult:
    periodic = bool(result.system.pbc.any())
    return OptimizationResult(
        coord=result.system.positions.reshape(-1).tolist(),
        numbers=list(atoms.numbers),
        cell=result.system.cell.reshape(-1).tolist() if periodic else None,
        pbc=result.system.pbc.tolist(),
        energy=result.energy,
        forces=result.forces.reshape(-1).tolist(),
        stress=(result.stress * EV_PER_A3_TO_KBAR).reshape(-1).tolist() if periodic else None,
        converged=result.converged,
        optimizer_nsteps=result.n_steps,
        structure_id=atoms.structure_id,
    )


def relax_options(body: InferRequest, settings: Settings) -> RelaxOptions:
    """The request's relaxation settings, the service's defaults where it names none."""
    def chosen(value, default):
        return value if value is not None else default

    return RelaxOptions(
        fmax=chosen(body.opttol, settings.opttol),
        pressure_tol_kbar=chosen(body.opttol_pressure, settings.opttol_pressure),
        cellopt=chosen(body.cellopt, settings.cellopt),
        max_steps=chosen(body.max_steps, settings.max_steps),
        optimizer=chosen(body.optimizer, settings.optimizer),
        cell_filter=chosen(body.cell_filter, settings.cell_filter),
    )


def wants_ndjson(request: Request) -> bool:
    return NDJSON in request.headers.get("accept", "")


@router.post("/v1/infer", response_model=InferResponse, response_model_exclude_none=True,
             dependencies=[Depends(require_api_key)], summary="Relax a batch of structures (BGR NIM)",
             responses={200: {"content": {NDJSON: {"schema": {"type": "string"}}},
                              "description": "the NIM's response; with `Accept: application/x-ndjson`, one JSON "
                                             "line per structure as it finishes (its fields and `index`), then "
                                             "a closing line with `status` and `info`"},
                        **error_responses(400, 401, 422, 503, 504, s400="Malformed JSON body",
                                          s503="Not ready, draining, backend unavailable, or the relaxation queue "
                                               "is full; retry after `Retry-After` seconds")})
async def infer(body: InferRequest, request: Request, services: Services = Depends(get_services)) -> Response | InferResponse:
    name = chosen_forcefield(body, services)
    queue = services.open_relax_queue(name)
    systems = [to_system(i, atoms, services, name) for i, atoms in enumerate(body.atoms)]
    options = relax_options(body, services.settings)
    admission = queue.admit(systems, [options] * len(systems))
    counters = services.state.counters
    counters.requests_received += 1
    counters.tasks_received += len(systems)
    if wants_ndjson(request):
        return StreamingResponse(_stream_lines(body, admission, services), media_type=NDJSON)
    try:
        results = await unless_disconnected(request, _collect(admission, body, services))
    except ClientDisconnected:  # its structures left the batch
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except DeadlinePassed as error:
        raise GatewayTimeout(f"the relaxation was {error}") from error
    finally:
        admission.release()
        counters.requests_completed += 1
    return InferResponse(
        atoms=[to_result(atoms, results[i]) for i, atoms in enumerate(body.atoms)],
        status="Success",
        info=body.info,
    )


async def _collect(admission: Admission, body: InferRequest, services: Services) -> dict[int, RelaxResult]:
    """Every structure's result, by its index in the request."""
    results: dict[int, RelaxResult] = {}
    async for index, result in before(admission.results(), deadline_after(body.timeout_s), body.timeout_s):
        results[index] = result
        services.structure_finished(result)
    return results


async def _stream_lines(body: InferRequest, admission: Admission, services: Services) -> AsyncIterator[bytes]:
    """One line per structure as it finishes, then the closing line."""
    closing: dict = {"status": "Success"}
    deadline = deadline_after(body.timeout_s)
    try:
        async for index, result in before(admission.results(), deadline, body.timeout_s):
            services.structure_finished(result)
            line = {"index": index, **to_result(body.atoms[index], result).model_dump(exclude_none=True)}
            yield (json.dumps(line) + "\n").encode()
    except DeadlinePassed as error:
        closing = {"status": "Timeout", "error": f"the relaxation was {error}"}
    except TritonRejected as error:
        closing = {"status": "Failure", "error": f"the force field rejected the structures: {error}"}
    except TritonUnavailable:
        closing = {"status": "Failure", "error": "backend unavailable: the force field stopped answering"}
    finally:
        admission.release()
        services.state.counters.requests_completed += 1
    if body.info is not None:
        closing["info"] = body.info
    yield (json.dumps(closing) + "\n").encode()
