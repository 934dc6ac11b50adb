"""``POST /v1/generate``: crystal structure generation as the CrystaLLM API serves it.

Invalid requests are 400 with ``{"error": ...}``, as CrystaLLM answers. Beyond the original:
``n`` candidates per request (the first valid one is returned, or all with ``"all": true``),
``seed`` for reproducible sampling, and without ``z`` the Z values 1, 2, 3, 4, 6, 8 are tried
in one batch instead of one at a time. With ``"relax": true`` the candidates are relaxed by the
served force field through the relaxation queue /v1/infer uses, and ranked by energy.

The route parses, calls Triton and shapes the answer; what a candidate is and how it is judged,
relaxed and ranked is ``matserve.generator.candidates`` and ``matserve.generator.relaxed``.
"""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Composition, Element

from gateway.auth import require_api_key
from gateway.deadline import MAX_TIMEOUT_S, DeadlinePassed, before, deadline_after
from gateway.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, unless_disconnected
from gateway.errors import BadRequest, GatewayTimeout, NotReady
from gateway.openapi import error_responses
from gateway.services import Services, get_services
from gateway.triton_client import TritonRejected, TritonUnavailable
from matserve.forcefields import entry
from matserve.generator.candidates import (add_message, candidate_prompts, first_valid, generated_cif, judged,
                                           normalised_comp, parse_cif)
from matserve.generator.relaxed import ranking, relax_options, relaxable, relaxed_fields, representatives
from matserve.generator.service import MODEL_NAMES, configured_checkpoints
from matserve.relax import RelaxResult
from matserve.structures import System

router = APIRouter()


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number, nor false a seed

    comp: str
    z: int | None = Field(None, ge=1, le=64)
    sg: str | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "2" is not a number, nor false a seed

    model: str
    message: Message
    fe: bool = False
    n: int = Field(1, ge=1, le=32, description="matserve: candidates per Z")
    all: bool = Field(False, description="matserve: return every candidate, not only the first valid one")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="matserve: sampling seed")
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S, description="matserve: past this many seconds "
                                    "the sampling (and relaxation) is cancelled and answered with 504")
    relax: bool = Field(False, description="matserve: relax each candidate that parses with the requested "
                                           "composition (cell included) with the served force field, and order "
                                           "them by energy per atom, valid first")


def available_models(services: Services) -> list[str]:
    settings = services.settings
    return sorted(configured_checkpoints(settings.generator_small, settings.generator_medium, settings.generator_large))


async def add_formation_energies(candidates: list[dict], services: Services,
                                 structures: list[System | None] | None = None) -> None:
    """``fe`` (ALIGNN, eV/atom) on each candidate whose CIF parses, in one batched call; a message on the others.
    ``structures``, when given, are the ones to use instead of the generated CIFs (the relaxed ones; None: parse)."""
    parsed = []
    for index, candidate in enumerate(candidates):
        system = structures[index] if structures is not None else None
        parsed.append((candidate, system or await asyncio.to_thread(parse_cif, candidate["generated"])))
    for candidate, system in parsed:
        if system is None:
            add_message(candidate, "fe: the generated CIF does not parse; no formation energy")
    ready = [(c, s) for c, s in parsed if s is not None]
    if not ready:
        return
    try:
        energies = await services.triton.formation_energies([s for _, s in ready])
    except TritonRejected:  # one structure spoils the batch: ask one by one to say which
        energies = []
        for candidate, system in ready:
            try:
                energies += await services.triton.formation_energies([system])
            except TritonRejected as error:
                energies.append(None)
                add_message(candidate, f"fe: {error}")
    except TritonUnavailable as error:
        raise NotReady("backend unavailable: the formation-energy model is not answering; retry later") from error
    for (candidate, _), energy in zip(ready, energies):
        if energy is not None:
            candidate["fe"] = energy


def check_relaxable(comp: str, services: Services) -> None:
    """Before sampling: the force field is ready and knows the composition's elements, or the request is refused."""
    services.open_relax_queue()
    unsupported = services.element_problem([Element(symbol).Z for symbol in Composition(comp).as_dict()])
    if unsupported:
        raise BadRequest(f"relax: {unsupported}")


async def relax_systems(systems: list[System], request: Request, services: Services,
                        deadline: float | None, timeout_s: float | None) -> dict[int, RelaxResult]:
    """Each structure's result by index, relaxed as /v1/infer's are: admitted to the relaxation
    queue (503 past its bound) and batched in flight with every other request's structures."""
    settings = services.settings
    options = relax_options(settings.optimizer, settings.cell_filter, settings.opttol_pressure)
    admission = services.open_relax_queue().admit(systems, [options] * len(systems))  # QueueFull: 503 (errors.py)
    services.state.counters.tasks_received += len(systems)

    async def collect() -> dict[int, RelaxResult]:
        results: dict[int, RelaxResult] = {}
        async for index, result in before(admission.results(), deadline, timeout_s):
            results[index] = result
            services.structure_finished(result)
        return results

    try:
        return await unless_disconnected(request, collect())
    finally:
        admission.release()


async def relaxed_and_ranked(completions: list[tuple[dict, str, str]], comp: str, every: bool, request: Request,
                             services: Services, deadline: float | None,
                             timeout_s: float | None) -> tuple[list[dict], list[System | None]]:
    """The returned candidates, ranked after relaxing each one that parses with the requested
    composition (each distinct structure once), and the structure ``fe`` uses for each (the
    relaxed one; None: the generated CIF)."""
    cutoff = entry(services.settings.forcefield).neighbour_cutoff

    def targets() -> list[System | str]:
        found = [relaxable(generated_cif(text), comp, cutoff) for _, text, _ in completions]
        too_large = [None if isinstance(t, str) else services.size_problem(t.n_atoms) for t in found]
        return [f"relax: {problem}; not relaxed" if problem else t for t, problem in zip(found, too_large)]

    found = await asyncio.to_thread(targets)
    indices = [i for i, target in enumerate(found) if not isinstance(target, str)]
    firsts = await asyncio.to_thread(representatives, [found[i] for i in indices])  # the same structure: relaxed once
    distinct = [position for position, first in enumerate(firsts) if first == position]
    relaxed: dict[int, dict] = {}
    systems: dict[int, System] = {}
    refusal = None
    if indices:
        try:
            results = await relax_systems([found[indices[p]] for p in distinct], request, services, deadline,
                                          timeout_s)
        except TritonRejected as error:  # the prechecks should leave the force field nothing to refuse
            refusal = f"relax: the force field refused the candidates ({error}); not relaxed"
        else:  # TritonUnavailable: 503 from its handler (gateway/errors.py)
            fields = {}
            for k, result in results.items():
                fields[distinct[k]] = await asyncio.to_thread(relaxed_fields, result.system, result.energy,
                                                              result.converged)
            for position, first in enumerate(firsts):
                systems[indices[position]] = results[distinct.index(first)].system
                relaxed[indices[position]] = fields[first]
    order = ranking([relaxed.get(i) for i in range(len(completions))])
    chosen = order if every else order[:1]
    returned = []
    for index in chosen:
        candidate = await asyncio.to_thread(judged, *completions[index])
        target = found[index]
        if isinstance(target, str):
            add_message(candidate, target)
        elif refusal:
            add_message(candidate, refusal)
        candidate.update(relaxed.get(index, {}))
        returned.append(candidate)
    return returned, [systems.get(index) for index in chosen]


@router.post("/v1/generate", response_model=dict, dependencies=[Depends(require_api_key)],
             summary="Generate a crystal structure (CIF) from a composition (CrystaLLM)",
             responses=error_responses(400, 401, 503, 504, s400="Invalid request, as CrystaLLM answers it: malformed "
                                                           "JSON, invalid values, an unknown or unconfigured model, "
                                                           "an unparseable composition or space group"))
async def generate(body: GenerateRequest, request: Request,
                   services: Services = Depends(get_services)) -> dict | Response:
    models = available_models(services)
    if body.model not in models:
        known = "" if body.model in MODEL_NAMES else f" (models are {', '.join(MODEL_NAMES)})"
        raise BadRequest(f"model {body.model!r} is not available{known}; models available: {', '.join(models) or 'none'}")
    message = body.message
    try:
        comp = normalised_comp(message.comp)
        pairs = candidate_prompts(comp, message.z, message.sg, body.n)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    if body.relax:
        check_relaxable(comp, services)
    prompts = [prompt for _, prompt in pairs]
    deadline = deadline_after(body.timeout_s)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    services.sequences.take(len(prompts))  # QueueFull: 503 with Retry-After (gateway/errors.py)
    finished = False
    try:
        sampling = asyncio.wait_for(services.triton.generate(body.model, prompts, seed), body.timeout_s)
        completed = await unless_disconnected(request, sampling)
        finished = True
    except ClientDisconnected:  # its sequences left the batch
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except TimeoutError as error:  # Triton's refusal (400) and absence (503) have their handlers
        raise GatewayTimeout(f"the generation was {DeadlinePassed(body.timeout_s or 0.0)}") from error
    finally:
        services.sequences.give_back(len(prompts), finished)
    completions = [(echoed, text, finish_reason) for (echoed, _), (text, finish_reason) in zip(pairs, completed)]
    if not body.relax:
        returned = await asyncio.to_thread(first_valid, completions, body.all)
        if body.fe:
            await add_formation_energies(returned, services)
        return {"cifs": returned}
    try:
        returned, structures = await relaxed_and_ranked(completions, comp, body.all, request, services, deadline,
                                                        body.timeout_s)
    except ClientDisconnected:  # its structures left the relaxation batch
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except DeadlinePassed as error:
        raise GatewayTimeout(f"the relaxation of the candidates was {error}") from error
    if body.fe:
        await add_formation_energies(returned, services, structures)
    return {"cifs": returned}
