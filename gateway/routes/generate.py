"""``POST /v1/generate``: crystal structure generation as the CrystaLLM API serves it.

Invalid requests are 400 with ``{"error": ...}``, as CrystaLLM answers. Beyond the original:
``n`` candidates per request (the first valid one is returned, or all with ``"all": true``),
``seed`` for reproducible sampling, and without ``z`` the Z values 1, 2, 3, 4, 6, 8 are tried
in one batch instead of one at a time.
"""

from __future__ import annotations

import asyncio
import secrets
import warnings

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Composition, Element, Structure

from gateway.auth import require_api_key
from gateway.deadline import MAX_TIMEOUT_S, DeadlinePassed
from gateway.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, unless_disconnected
from gateway.admission import QueueFull
from gateway.errors import BadRequest, GatewayTimeout, NotReady, Saturated
from gateway.openapi import error_responses
from gateway.services import Services, get_services
from gateway.triton_client import TritonRejected, TritonUnavailable
from matserve.generator.prompt import build_prompt
from matserve.generator.service import MODEL_NAMES, configured_checkpoints
from matserve.generator.validity import judge
from matserve.structures import System

router = APIRouter()

Z_WITHOUT_Z = (1, 2, 3, 4, 6, 8)


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
                                    "the sampling is cancelled and answered with 504")


def available_models(services: Services) -> list[str]:
    settings = services.settings
    return sorted(configured_checkpoints(settings.generator_small, settings.generator_medium, settings.generator_large))


def normalised_comp(comp: str) -> str:
    try:
        composition = Composition(comp)
    except Exception:
        composition = None
    if composition is None or not all(isinstance(element, Element) for element in composition):
        raise BadRequest(f"'comp' cannot be parsed as a composition: {comp!r}")
    if not composition or any(not float(n).is_integer() or n <= 0 for n in composition.values()):
        raise BadRequest(f"'comp' must be a stoichiometric composition with whole numbers of atoms: {comp!r}")
    # Z multiplies the reduced formula, so the echoed input shows that formula: Na2Cl2 is Na1Cl1
    return "".join(f"{element}{int(amount)}" for element, amount in composition.reduced_composition.items())


def _candidate(prompt_input: dict, generated: str, finish_reason: str) -> dict:
    judged = judge(generated, finish_reason)
    return {"input": prompt_input, "generated": judged.cif, "valid": judged.valid,
            "messages": list(judged.messages) or [None]}


def _add_message(candidate: dict, message: str) -> None:
    candidate["messages"] = [m for m in candidate["messages"] if m] + [message]


def _parse_cif(cif: str) -> System | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return System.from_pymatgen(Structure.from_str(cif, fmt="cif"))
    except Exception:  # pymatgen raises many kinds on a malformed CIF
        return None


async def add_formation_energies(candidates: list[dict], services: Services) -> None:
    """``fe`` (ALIGNN, eV/atom) on each candidate whose CIF parses, in one batched call; a message on the others."""
    parsed = [(c, await asyncio.to_thread(_parse_cif, c["generated"])) for c in candidates]
    for candidate, system in parsed:
        if system is None:
            _add_message(candidate, "fe: the generated CIF does not parse; no formation energy")
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
                _add_message(candidate, f"fe: {error}")
    except TritonUnavailable as error:
        raise NotReady("backend unavailable: the formation-energy model is not answering; retry later") from error
    for (candidate, _), energy in zip(ready, energies):
        if energy is not None:
            candidate["fe"] = energy


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
    comp = normalised_comp(message.comp)
    zs = [message.z] if message.z is not None else list(Z_WITHOUT_Z)
    inputs, prompts = [], []
    for z in zs:
        try:
            prompt = build_prompt(comp, z, message.sg)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        normalised = {"comp": comp, "z": z, **({"sg": message.sg} if message.sg else {})}
        inputs += [normalised] * body.n
        prompts += [prompt] * body.n
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    try:
        services.sequences.take(len(prompts))
    except QueueFull as error:
        raise Saturated(str(error), error.retry_after_s) from error
    finished = False
    try:
        sampling = asyncio.wait_for(services.triton.generate(body.model, prompts, seed), body.timeout_s)
        completed = await unless_disconnected(request, sampling)
        finished = True
    except ClientDisconnected:  # its sequences left the batch
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except TimeoutError as error:
        raise GatewayTimeout(f"the generation was {DeadlinePassed(body.timeout_s or 0.0)}") from error
    except TritonRejected as error:
        raise BadRequest(str(error)) from error
    except TritonUnavailable as error:
        raise NotReady("backend unavailable: the generator is not answering; retry later") from error
    finally:
        services.sequences.give_back(len(prompts), finished)
    candidates = []
    for prompt_input, (text, finish_reason) in zip(inputs, completed):
        candidate = await asyncio.to_thread(_candidate, prompt_input, text, finish_reason)
        candidates.append(candidate)
        if candidate["valid"] and not body.all:
            candidates = [candidate]
            break
    returned = candidates if body.all else candidates[:1]
    if body.fe:
        await add_formation_energies(returned, services)
    return {"cifs": returned}
