"""Python client for a matserve service (and, for predictions, the AFLOW-ML ``AFLOWmlAPI`` calls).

    client = MatserveClient("http://127.0.0.1:8000")
    client.get_prediction(open("my.poscar").read(), "mfd")       # submit, poll, return the fields
    relaxed = client.relax([structure], cellopt=True)             # pymatgen in, pymatgen out (or ASE)
    for index, result in client.relax_stream(structures):         # each one as soon as it finishes
        ...
    (best,) = client.generate("NaCl", 4, n=16, relax=True)         # best.structure: relaxed, lowest energy
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Sequence

import httpx
import numpy as np
from ase import Atoms
from pymatgen.core import Structure

from matserve.structures import System

FINISHED = ("SUCCESS", "FAILURE")
NDJSON = "application/x-ndjson"
SATURATED_RETRIES = 20  # a full relaxation queue answers 503 with Retry-After: wait and send again


class MatserveError(Exception):
    def __init__(self, status_code: int, message: str):
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message


class PredictionFailed(Exception):
    pass


@dataclass
class Relaxed:
    """One relaxation result, with the structure in the type the caller sent."""

    structure: Structure | Atoms
    energy: float  # eV
    forces: np.ndarray  # (n, 3) eV/Å
    stress: np.ndarray | None  # (3, 3) kBar
    converged: bool
    steps: int


def _system(item: Structure | Atoms) -> System:
    return System.from_pymatgen(item) if isinstance(item, Structure) else System.from_ase(item)


def _atoms_json(item: Structure | Atoms, structure_id: str) -> dict[str, Any]:
    system = _system(item)
    body: dict[str, Any] = {"coord": system.positions.reshape(-1).tolist(), "numbers": system.numbers.tolist(),
                            "structure_id": structure_id}
    if system.pbc.any():
        body["cell"] = system.cell.reshape(-1).tolist()
        body["pbc"] = system.pbc.tolist()
    return body


def _relax_body(items: list[Structure | Atoms], cellopt: bool, fmax: float | None, pressure_kbar: float | None,
                max_steps: int | None, optimizer: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"atoms": [_atoms_json(item, str(i)) for i, item in enumerate(items)], "cellopt": cellopt}
    for key, value in (("opttol", fmax), ("opttol_pressure", pressure_kbar), ("max_steps", max_steps),
                       ("optimizer", optimizer)):
        if value is not None:
            body[key] = value
    return body


def _relaxed(original: Structure | Atoms, result: dict[str, Any]) -> Relaxed:
    positions = np.reshape(result["coord"], (-1, 3))
    cell = np.reshape(result["cell"], (3, 3)) if "cell" in result else np.zeros((3, 3))
    system = System(positions, result["numbers"], cell, result["pbc"])
    structure = system.to_pymatgen() if isinstance(original, Structure) else system.to_ase()
    stress = np.reshape(result["stress"], (3, 3)) if "stress" in result else None
    return Relaxed(structure, result["energy"], np.reshape(result["forces"], (-1, 3)), stress, result["converged"],
                   result["optimizer_nsteps"])


@dataclass
class Generated:
    """One generated candidate, relaxed by the service (``structure`` None when it was not: see ``messages``)."""

    structure: Structure | None  # relaxed
    cif: str | None  # the relaxed structure as the service wrote it (CrystaLLM's format)
    energy_per_atom: float | None  # eV/atom, the force field's
    converged: bool | None
    valid: bool  # the relaxed structure's validity (the generated one's when not relaxed)
    messages: list[str]  # why not valid, and why not relaxed
    generated: Structure | None  # the structure as generated, before relaxation
    fe: float | None = None  # ALIGNN formation energy per atom, with fe=True


def _structure(cif: str | None) -> Structure | None:
    if cif is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_str(cif, fmt="cif")
    except Exception:  # pymatgen raises many kinds on a malformed CIF
        return None


def _generated(candidate: dict[str, Any]) -> Generated:
    messages = [m for m in candidate["messages"] if m]
    validity = candidate.get("validity")
    if validity is not None:
        messages += validity["messages"]
    return Generated(
        structure=_structure(candidate.get("relaxed")),
        cif=candidate.get("relaxed"),
        energy_per_atom=candidate.get("energy_per_atom"),
        converged=candidate.get("relax_converged"),
        valid=validity["valid"] if validity is not None else candidate["valid"],
        messages=messages,
        generated=_structure(candidate["generated"]),
        fe=candidate.get("fe"),
    )


class MatserveClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 3600.0):
        self.base_url = base_url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MatserveClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise MatserveError(response.status_code, message)
        return response.json()

    # Operations
    def status(self) -> dict[str, Any]:
        return self._json(self._http.get("/v1/status"))

    def ready(self) -> bool:
        return self._http.get("/v1/health/ready").status_code == 200

    # Predictions (AFLOW-ML)
    def submit_job(self, file_str: str, model: str) -> str:
        """Submit a POSCAR or CIF; returns the job id."""
        return self._json(self._http.post(f"/v1/{model}/prediction", data={"file": file_str}))["id"]

    def poll_job(self, job_id: str, fields: Sequence[str] | None = None, interval_s: float = 0.5,
                 timeout_s: float | None = None) -> dict[str, Any]:
        """Wait for the job; returns its fields (only ``fields`` if given); PredictionFailed on FAILURE."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            body = self._json(self._http.get(f"/v1/prediction/result/{job_id}"))
            if body["status"] == "FAILURE":
                raise PredictionFailed(body.get("description", "prediction failed"))
            if body["status"] == "SUCCESS":
                return {k: v for k, v in body.items() if k in fields} if fields else body
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {body['status']}")
            time.sleep(interval_s)

    def get_prediction(self, file_str: str, model: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        return self.poll_job(self.submit_job(file_str, model), fields)

    def predict(self, file_str: str, model: str) -> dict[str, Any]:
        """The synchronous route: one call, the fields."""
        return self._json(self._http.post(f"/v1/{model}/predict", data={"file": file_str}))

    # Relaxation (BGR NIM)
    def relax(self, structures: Structure | Atoms | Sequence[Structure | Atoms], cellopt: bool = False,
              fmax: float | None = None, pressure_kbar: float | None = None,
              max_steps: int | None = None, optimizer: str | None = None) -> Relaxed | list[Relaxed]:
        single = isinstance(structures, (Structure, Atoms))
        items = [structures] if single else list(structures)
        body = _relax_body(items, cellopt, fmax, pressure_kbar, max_steps, optimizer)
        results = self._json(self._http.post("/v1/infer", json=body))["atoms"]
        relaxed = [_relaxed(item, result) for item, result in zip(items, results)]
        return relaxed[0] if single else relaxed

    def relax_stream(self, structures: Sequence[Structure | Atoms], cellopt: bool = False,
                     fmax: float | None = None, pressure_kbar: float | None = None,
                     max_steps: int | None = None, optimizer: str | None = None) -> Iterator[tuple[int, Relaxed]]:
        """(index in ``structures``, result) of each structure as soon as the service finishes it,
        all sent in one streamed request; a full queue (503) is waited out as its Retry-After says."""
        items = list(structures)
        body = _relax_body(items, cellopt, fmax, pressure_kbar, max_steps, optimizer)
        for line in self._stream_lines("/v1/infer", body):
            if "index" in line:
                yield line["index"], _relaxed(items[line["index"]], line)
            elif line.get("status") != "Success":
                raise MatserveError(503, line.get("error", "the relaxation failed"))

    def _stream_lines(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for attempt in range(SATURATED_RETRIES + 1):
            with self._http.stream("POST", path, json=body, headers={"accept": NDJSON}) as response:
                if response.status_code == 503 and "retry-after" in response.headers and attempt < SATURATED_RETRIES:
                    response.read()
                    time.sleep(float(response.headers["retry-after"]))
                    continue
                if response.status_code >= 400:
                    response.read()
                    self._json(response)  # raises MatserveError with the envelope's message
                for text in response.iter_lines():
                    if text:
                        yield json.loads(text)
                return

    # Generation (CrystaLLM)
    def generate(self, comp: str, z: int | None = None, sg: str | None = None, fe: bool = False,
                 model: str = "small", n: int = 1, return_all: bool = False, seed: int | None = None,
                 relax: bool = False) -> dict[str, Any] | list[Generated]:
        """The service's answer as JSON; with ``relax``, the candidates relaxed by the served force
        field as pymatgen structures, lowest energy first (one unless ``return_all``, the API's "all")."""
        message: dict[str, Any] = {"comp": comp}
        if z is not None:
            message["z"] = z
        if sg is not None:
            message["sg"] = sg
        body: dict[str, Any] = {"model": model, "message": message, "fe": fe}
        for key, value, default in (("n", n, 1), ("all", return_all, False), ("seed", seed, None), ("relax", relax, False)):
            if value != default:
                body[key] = value
        answer = self._json(self._http.post("/v1/generate", json=body))
        return [_generated(candidate) for candidate in answer["cifs"]] if relax else answer

