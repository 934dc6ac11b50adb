"""``POST /v1/infer``: batched geometry relaxation, as NVIDIA's BGR NIM serves it."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends

from gateway.auth import require_api_key
from gateway.errors import InvalidInput, NotReady
from gateway.schemas import AtomicData, InferRequest, InferResponse, OptimizationResult
from gateway.services import Services, get_services
from gateway.triton_client import TritonRejected, TritonUnavailable
from matserve.forcefields import EV_PER_A3_TO_KBAR
from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import MIN_DISTANCE, System, minimum_distance

router = APIRouter()


def _invalid(index: int, field: str, message: str, error_type: str = "value_error") -> InvalidInput:
    return InvalidInput(
        f"atoms.{index}.{field}: {message}",
        [{"loc": ["body", "atoms", index, field], "msg": message, "type": error_type}],
    )


def to_system(index: int, atoms: AtomicData, services: Services) -> System:
    """One request structure as a System, or 422 naming what is wrong with it."""
    settings = services.settings
    too_large = services.size_problem(len(atoms.numbers))
    if too_large:
        raise _invalid(index, "numbers", too_large)
    unsupported = services.element_problem(list(atoms.numbers))
    if unsupported:
        raise _invalid(index, "numbers", unsupported)
    if atoms.charge != 0 or atoms.mult != 1:
        field = "charge" if atoms.charge != 0 else "mult"
        raise _invalid(index, field, f"force field {settings.forcefield!r} cannot use charge or spin multiplicity; "
                                     "send charge 0 and mult 1")
    cell = np.array(atoms.cell if atoms.cell is not None else np.zeros(9)).reshape(3, 3)
    pbc = np.array(atoms.periodic)
    if pbc.any() and abs(np.linalg.det(cell)) < 1e-6:
        raise _invalid(index, "cell", "cell vectors are degenerate (zero volume)")
    system = System(np.array(atoms.coord).reshape(-1, 3), atoms.numbers, cell, pbc, atoms.active_mask)
    closest = minimum_distance(system)
    if closest < MIN_DISTANCE:
        raise _invalid(index, "coord", f"two atoms are {closest:.3f} Å apart; the minimum is {MIN_DISTANCE} Å")
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


@router.post("/v1/infer", response_model=InferResponse, response_model_exclude_none=True,
             dependencies=[Depends(require_api_key)])
async def infer(body: InferRequest, services: Services = Depends(get_services)) -> InferResponse:
    if services.batcher is None or services.state.draining:
        raise NotReady("not ready: " + ("draining" if services.state.draining else "estimating batch sizes"))
    systems = [to_system(i, atoms, services) for i, atoms in enumerate(body.atoms)]
    settings = services.settings
    options = RelaxOptions(
        fmax=body.opttol if body.opttol is not None else settings.opttol,
        pressure_tol_kbar=body.opttol_pressure if body.opttol_pressure is not None else settings.opttol_pressure,
        cellopt=body.cellopt if body.cellopt is not None else settings.cellopt,
        max_steps=body.max_steps if body.max_steps is not None else settings.max_steps,
    )
    counters = services.state.counters
    counters.requests_received += 1
    counters.tasks_received += len(systems)
    try:
        results = await services.batcher.submit(systems, [options] * len(systems))
    except TritonRejected as error:
        raise InvalidInput(f"the force field rejected the structures: {error}") from error
    except TritonUnavailable as error:
        raise NotReady(f"backend unavailable: {error}") from error
    finally:
        counters.requests_completed += 1
    counters.tasks_completed += len(systems)
    services.metrics.structures.labels("converged").inc(sum(r.converged for r in results))
    services.metrics.structures.labels("not_converged").inc(sum(not r.converged for r in results))
    return InferResponse(
        atoms=[to_result(atoms, result) for atoms, result in zip(body.atoms, results)],
        status="Success",
        info=body.info,
    )
