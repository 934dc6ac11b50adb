"""Async calls to Triton over gRPC (tritonclient), in matserve's own types.

Unary calls (``infer``) for the property models; a bidirectional stream (``stream``) for the
decoupled models, which answer one request with several responses as its parts finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from gateway.property_models import PropertyModel
from matserve.contract import encode_structures
from matserve.forcefield_model import STRUCTURE_OUTPUTS
from matserve.triton_adapter import INVALID_PREFIX
from matserve.relax import RelaxOptions, RelaxResult
from matserve.structures import System


ALIGNN_MODEL = "alignn"
FORCEFIELD_MODEL = "forcefield"  # the default force field's; the others are forcefield-<name>
T = TypeVar("T")


class TritonUnavailable(Exception):
    """Triton did not answer ``model``: not started, dead, or the model not loaded (answered 503)."""

    def __init__(self, model: str, reason: str):
        super().__init__(f"{model}: {reason}")
        self.model = model


class TritonRejected(ValueError):
    """``model`` refused the inputs as invalid, a user error (answered 422; 400 on /v1/generate)."""

    def __init__(self, model: str, message: str):
        super().__init__(message)
        self.model = model


def triton_inputs(arrays: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    """Named numpy arrays as Triton inputs, each of the Triton type of its dtype."""
    tensors = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def forcefield_inputs(
    systems: list[System], options: list[RelaxOptions], atom_budget: int = 0
) -> list[grpcclient.InferInput]:
    return triton_inputs({
        **encode_structures(systems, active_mask=True),
        "FMAX": np.array([o.fmax for o in options], dtype=np.float64),
        "PRESSURE_TOL": np.array([o.pressure_tol_kbar for o in options], dtype=np.float64),
        "CELLOPT": np.array([o.cellopt for o in options], dtype=bool),
        "MAX_STEPS": np.array([o.max_steps for o in options], dtype=np.int32),
        "OPTIMIZER": np.array([o.optimizer.encode() for o in options], dtype=object),
        "CELL_FILTER": np.array([o.cell_filter.encode() for o in options], dtype=object),
        "ATOM_BUDGET": np.array([atom_budget], dtype=np.int32),
    })


def forcefield_result(outputs: dict[str, np.ndarray], system: System) -> tuple[int, RelaxResult]:
    """(index in the request, result) from one response of the decoupled forcefield model."""
    return int(outputs["INDEX"][0]), RelaxResult(
        system=System(outputs["POSITIONS_OUT"], system.numbers, outputs["CELLS_OUT"][0], system.pbc, system.active_mask),
        energy=float(outputs["ENERGY"][0]),
        forces=outputs["FORCES"],
        stress=outputs["STRESS"][0],
        converged=bool(outputs["CONVERGED"][0]),
        n_steps=int(outputs["NSTEPS"][0]),
    )


def _triton_error(model: str, error: InferenceServerException) -> Exception:
    """A user error (INVALID_ARG) as TritonRejected, anything else as TritonUnavailable."""
    message = str(error.message())
    if INVALID_PREFIX in message:
        return TritonRejected(model, message.split(INVALID_PREFIX, 1)[1])
    if "INVALID_ARGUMENT" in str(error.status()):
        return TritonRejected(model, message)
    return TritonUnavailable(model, str(error.message()))


class TritonClient:
    def __init__(self, url: str):
        self.url = url
        self._client = grpcclient.InferenceServerClient(url)
        self._failed = asyncio.Event()  # set when Triton or a model process died: nothing more will come
        self._failure = ""

    def fail(self, reason: str) -> None:
        """Triton can no longer answer: every call waiting on it, and every later one, raises TritonUnavailable."""
        self._failure = reason
        self._failed.set()

    async def _unless_failed(self, model: str, pending: Awaitable[T]) -> T:
        """``pending``'s result, unless Triton fails first (a dead stub never answers a decoupled request)."""
        if self._failed.is_set():
            raise TritonUnavailable(model, self._failure)
        answer = asyncio.ensure_future(pending)
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({answer, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if not answer.done():
            answer.cancel()
            raise TritonUnavailable(model, self._failure)
        return answer.result()

    async def close(self) -> None:
        await self._client.close()

    async def ready_models(self, models: list[str]) -> list[str]:
        """The models among ``models`` that Triton serves ready now (empty if Triton is down)."""
        try:
            if not await self._client.is_server_ready(client_timeout=2.0):
                return []
            return [m for m in models if await self._client.is_model_ready(m, client_timeout=2.0)]
        except InferenceServerException:
            return []

    async def infer(self, model: str, inputs: list[grpcclient.InferInput], outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        try:
            result = await self._unless_failed(model, self._client.infer(model, inputs, outputs=requested))
        except InferenceServerException as error:
            raise _triton_error(model, error) from error
        return {name: result.as_numpy(name) for name in outputs}

    async def stream(self, model: str, inputs: list[grpcclient.InferInput], outputs: tuple[str, ...],
                     expected: int) -> AsyncIterator[dict[str, np.ndarray]]:
        """The ``expected`` responses of one request to a decoupled model, each as it arrives.

        Closing the iterator early (the caller went away) cancels the stream, and Triton
        cancels the request: the model drops its work at its next step.
        """
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        finished = asyncio.Event()

        async def request() -> AsyncIterator[dict]:
            yield {"model_name": model, "inputs": inputs, "outputs": requested}
            await finished.wait()  # keep our side open until every response has come

        responses = self._client.stream_infer(request())
        try:
            for received in range(expected):
                try:
                    result, error = await self._unless_failed(model, responses.__anext__())
                except StopAsyncIteration:
                    raise TritonUnavailable(model, f"the stream ended after {received} of {expected} responses")
                except (InferenceServerException, grpc.RpcError) as failure:
                    raise TritonUnavailable(model, str(failure)) from failure
                if error is not None:
                    raise _triton_error(model, error)
                yield {name: result.as_numpy(name) for name in outputs}
        finally:
            finished.set()
            responses.cancel()

    async def relax_stream(self, systems: list[System], options: list[RelaxOptions], atom_budget: int = 0,
                           model: str = FORCEFIELD_MODEL) -> AsyncIterator[tuple[int, RelaxResult]]:
        """(index, result) of each structure, in the order they finish, from the Triton force-field ``model``."""
        inputs = forcefield_inputs(systems, options, atom_budget)
        async for outputs in self.stream(model, inputs, STRUCTURE_OUTPUTS, len(systems)):
            index = int(outputs["INDEX"][0])
            yield forcefield_result(outputs, systems[index])

    async def forcefield(self, systems: list[System], options: list[RelaxOptions], atom_budget: int = 0,
                         model: str = FORCEFIELD_MODEL) -> list[RelaxResult]:
        """Every structure's result, in the request's order."""
        results: dict[int, RelaxResult] = {}
        async for index, result in self.relax_stream(systems, options, atom_budget, model):
            results[index] = result
        return [results[i] for i in range(len(systems))]

    async def generate(self, model: str, prompts: list[str], seed: int, temperature: float = 0.8,
                       top_k: int = 10) -> list[tuple[str, str]]:
        """(prompt + completion, finish reason) for each prompt, in order. The decoupled generator
        model samples them in its running batch, with the prompts of concurrent requests, and
        answers each prompt (INDEX, TEXT, FINISH) as its CIF ends; a refusal is one error."""
        inputs = triton_inputs({
            "MODEL": np.array([model.encode()], dtype=object),
            "PROMPTS": np.array([p.encode() for p in prompts], dtype=object),
            "SEED": np.array([seed], dtype=np.int64),
            "TEMPERATURE": np.array([temperature], dtype=np.float64),
            "TOP_K": np.array([top_k], dtype=np.int32),
        })
        completed: dict[int, tuple[str, str]] = {}
        async for outputs in self.stream("generator", inputs, ("INDEX", "TEXT", "FINISH"), max(len(prompts), 1)):
            completed[int(outputs["INDEX"][0])] = (outputs["TEXT"][0].decode(), outputs["FINISH"][0].decode())
        return [completed[i] for i in range(len(prompts))]

    async def formation_energies(self, systems: list[System]) -> list[float]:
        """ALIGNN formation energy per atom (eV/atom) of each structure, packed into one call."""
        outputs = await self.infer(ALIGNN_MODEL, triton_inputs(encode_structures(systems)), ("FORMATION_ENERGY",))
        return [float(e) for e in outputs["FORMATION_ENERGY"].reshape(-1)]

    async def property(self, model: PropertyModel, system: System) -> tuple[str, dict[str, float | str]]:
        """(description, response fields) of one structure from a property model."""
        inputs = triton_inputs(encode_structures([system]))
        outputs = await self.infer(model.triton_model, inputs, (*model.outputs, "DESCRIPTION"))
        fields = {field: _scalar(outputs[name]) for name, field in model.outputs.items()}
        return str(_scalar(outputs["DESCRIPTION"])), fields


def _scalar(array: np.ndarray) -> float | str:
    value = array.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return value if isinstance(value, str) else float(value)

