"""The whole service for real: tritonserver with CHGNet behind the gateway, over HTTP.

The SIGTERM test stops the shared server, so it comes last in this file.
"""

import asyncio
import signal
import threading
import time

import numpy as np
import pytest
from chgnet.model.dynamics import CHGNetCalculator

from gateway.property_models import load_registry
from gateway.triton_client import TritonClient
from matserve.relax import RelaxOptions
from matserve.structures import System
from tests.crystals import cu, nacl, rattled, si
from tests.integration.conftest import FORCEFIELDS

pytestmark = pytest.mark.integration

SEED_SINGLE = {"atoms": [{"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1],
                          "cell": [10, 0, 0, 0, 10, 0, 0, 0, 10]}]}
SEED_MULTIPLE = {
    "atoms": [
        {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1], "cell": [10, 0, 0, 0, 10, 0, 0, 0, 10],
         "structure_id": "H2_struct1"},
        {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.5], "numbers": [1, 1], "cell": [10, 0, 0, 0, 10, 0, 0, 0, 10],
         "structure_id": "H2_struct2"},
    ],
    "opttol": 0.001,
}
RESULT_FIELDS = {"coord", "numbers", "cell", "pbc", "energy", "forces", "stress", "converged", "optimizer_nsteps"}


def atoms_json(atoms, **extra):
    return {"coord": atoms.positions.reshape(-1).tolist(), "numbers": atoms.numbers.tolist(),
            "cell": np.array(atoms.cell).reshape(-1).tolist(), **extra}


def test_ready_was_503_until_triton_was(service):
    assert service.ready_codes_seen[0] == 503
    assert service.ready_codes_seen[-1] == 200


def test_operational_endpoints(service):
    models = len(FORCEFIELDS) + 1 + len(load_registry())  # each force field, the generator, every property model
    assert service.get("/v1/health/live").json() == {"status": "live"}
    assert service.get("/v1/health/ready").json() == {"status": "ready", "backends_alive": models, "backends_total": models}
    status = service.get("/v1/status").json()
    assert status["total"]["max_system_size"] > 256  # measured at start-up, above the largest probe
    assert status["workers"][0]["batch_size"] > 0 and status["workers"][0]["device"] == "cpu"
    metrics = service.get("/v1/metrics").text
    assert "matserve_requests_total" in metrics and "matserve_queue_size_atoms" in metrics
    weights = service.get("/v1/metadata").json()["models"][0]["weights"]
    assert weights["name"] == "CHGNet 0.3.0" and len(weights["sha256"]) == 64


def test_forcefield_model_through_the_triton_client_equals_chgnet(service, chgnet):
    crystal = rattled(nacl().repeat((2, 1, 1)), seed=3)

    async def call():
        client = TritonClient(f"127.0.0.1:{service.triton_grpc_port}")
        try:
            return await client.forcefield([System.from_ase(crystal)], [RelaxOptions(max_steps=0)])
        finally:
            await client.close()

    (result,) = asyncio.run(call())
    crystal.calc = CHGNetCalculator(model=chgnet.model)
    direct = crystal.get_potential_energy()
    assert abs(result.energy - direct) / len(crystal) < 1e-4
    np.testing.assert_allclose(result.forces, crystal.get_forces(), atol=1e-4)
    assert result.n_steps == 0


def test_seed_single_structure_example(service):
    response = service.post("/v1/infer", json=SEED_SINGLE)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"atoms", "status"} and body["status"] == "Success"
    (result,) = body["atoms"]
    assert set(result) == RESULT_FIELDS
    assert result["converged"] and np.abs(result["forces"]).max() <= 0.005
    assert 0.7 < result["coord"][5] - result["coord"][2] < 0.8  # H–H relaxed to about 0.75 Å


def test_seed_multiple_structures_example(service):
    body = service.post("/v1/infer", json=SEED_MULTIPLE).json()
    first, second = body["atoms"]
    assert set(first) == RESULT_FIELDS | {"structure_id"}
    assert [first["structure_id"], second["structure_id"]] == ["H2_struct1", "H2_struct2"]
    for result in (first, second):
        assert result["converged"]
        forces = np.array(result["forces"]).reshape(-1, 3)
        assert np.linalg.norm(forces, axis=1).max() <= 0.001
    assert first["energy"] == pytest.approx(second["energy"], abs=1e-3)  # the same molecule, relaxed


def test_the_seed_h2_relaxes_through_each_of_two_forcefields_in_one_deployment(service, chgnet):
    from ase import Atoms
    from sevenn.calculator import SevenNetCalculator

    calculators = {"chgnet": CHGNetCalculator(model=chgnet.model), "sevennet": SevenNetCalculator("7net-0")}
    assert [f["name"] for f in service.get("/v1/status").json()["forcefields"]] == list(FORCEFIELDS)
    energies = {}
    for model in FORCEFIELDS:
        response = service.post("/v1/infer", json={**SEED_SINGLE, "model": model})
        assert response.status_code == 200, response.text
        (result,) = response.json()["atoms"]
        assert result["converged"] and 0.7 < result["coord"][5] - result["coord"][2] < 0.8
        relaxed = Atoms(numbers=result["numbers"], positions=np.reshape(result["coord"], (-1, 3)),
                        cell=np.reshape(result["cell"], (3, 3)), pbc=result["pbc"])
        relaxed.calc = calculators[model]
        assert result["energy"] == pytest.approx(relaxed.get_potential_energy(), abs=1e-4)  # that model's energy
        energies[model] = result["energy"]
    # each answer is its own model's within 1e-4 eV and they are 0.02 eV apart: two models, not one twice
    assert abs(energies["chgnet"] - energies["sevennet"]) > 1e-3


def test_periodic_and_molecular_structures_in_one_request(service):
    crystal = rattled(si(), seed=2)
    molecule = {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.2], "numbers": [1, 1], "structure_id": "h2"}
    body = {"atoms": [atoms_json(crystal, structure_id="si"), molecule], "opttol": 0.02, "cellopt": True}
    periodic, isolated = service.post("/v1/infer", json=body).json()["atoms"]
    assert periodic["converged"] and isolated["converged"]
    assert len(periodic["cell"]) == 9 and max(abs(s) for s in periodic["stress"]) <= 0.5
    assert "cell" not in isolated and isolated["pbc"] == [False, False, False]


def test_bad_input_leaves_the_server_serving(service):
    assert service.post("/v1/infer", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    assert service.post("/v1/infer", json={"atoms": [{"coord": [0, 0, 0], "numbers": [200]}]}).status_code == 422
    assert service.post("/v1/infer", json={"atoms": [atoms_json(cu(), numbers=[99])]}).status_code == 422
    assert service.post("/v1/infer", json=SEED_SINGLE).status_code == 200


def test_zz_sigterm_drains_in_flight_work_then_exits_cleanly(service):
    crystal = rattled(nacl().repeat((2, 2, 1)), amount=0.1, seed=9)
    slow = {"atoms": [atoms_json(crystal)], "opttol": 1e-9, "max_steps": 20}  # runs all 20 steps, seconds
    outcome = {}

    def request():
        outcome["response"] = service.post("/v1/infer", json=slow)

    worker = threading.Thread(target=request)
    worker.start()
    deadline = time.monotonic() + 30
    while service.get("/v1/status").json()["total"]["requests_in_progress"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    service.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert service.get("/v1/health/ready").status_code == 503
    assert service.get("/v1/health/live").status_code == 200
    worker.join(timeout=120)
    response = outcome["response"]
    assert response.status_code == 200
    assert response.json()["atoms"][0]["optimizer_nsteps"] == 20
    assert service.process.wait(timeout=60) == 0
