"""A model process (Triton's Python-backend stub) killed mid-work: the requests in flight get 503
at once (not a hang), readiness turns 503, ``matserve serve`` exits non-zero for the orchestrator
to restart it, and a prediction job in flight runs again after the restart instead of being lost.
Then Triton itself killed: not ready, and an exit non-zero (two service starts for all of it)."""

import asyncio
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from matserve.tritonserver import python_stubs
from tests.crystals import nacl, rattled
from tests.gateway.test_predict import NACL_POSCAR
from tests.integration.conftest import Service, start_service, stop, wait_until_ready

pytestmark = pytest.mark.integration

FAST_START = {"MATSERVE_BATCH_SIZE": "256", "MATSERVE_REPLICA_ID": "faulty"}  # a set budget skips the probe
ANSWER_WITHIN_S = 5  # after the kill


def kill_stub(service: Service, instance: str) -> None:
    (pid,) = [pid for pid, name in python_stubs(service.triton_pid()).items() if name == instance]
    os.kill(pid, signal.SIGKILL)


def in_background(call) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["response"] = call()
        except httpx.HTTPError as error:
            outcome["error"] = error
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def assert_fails_over(service: Service, thread: threading.Thread, outcome: dict, killed_at: float) -> None:
    thread.join(timeout=60)
    assert not thread.is_alive(), "the request in flight hung"
    assert outcome["response"].status_code == 503, outcome["response"].text
    assert outcome["at"] - killed_at < ANSWER_WITHIN_S
    try:
        assert service.get("/v1/health/ready", timeout=5).status_code == 503
    except httpx.TransportError:
        pass  # the gateway is already gone: that is not ready too
    assert service.process.wait(timeout=30) != 0


def wait_for(predicate, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_dead_model_processes_fail_the_work_in_flight_and_a_prediction_job_survives_the_restart(tmp_path):
    """The force field's and the generator's stubs killed while each works (one service start for both:
    any dead stub fails the service); a phonon job in flight at the time runs again after the restart."""
    slow_phonons = {"MATSERVE_PHONON_SUPERCELL_MIN_LENGTH": "12", **FAST_START}
    service = start_service(tmp_path, MATSERVE_MODELS="generator,mfd", **slow_phonons)  # what it kills and runs
    restarted = None
    try:
        wait_until_ready(service)
        crystal = rattled(nacl().repeat((2, 2, 1)), amount=0.1, seed=9)
        slow = {"atoms": [{"coord": crystal.positions.reshape(-1).tolist(), "numbers": crystal.numbers.tolist(),
                           "cell": np.array(crystal.cell).reshape(-1).tolist()}], "opttol": 1e-9, "max_steps": 2000}
        many = {"model": "small", "message": {"comp": "Ba2Ti2O6", "z": 4}, "n": 16, "all": True, "seed": 3}
        relaxing, relaxed = in_background(lambda: service.post("/v1/infer", json=slow, timeout=120))
        sampling, sampled = in_background(lambda: service.post("/v1/generate", json=many, timeout=120))
        job_id = service.post("/v1/mfd/prediction", data={"file": NACL_POSCAR}).json()["id"]
        wait_for(lambda: service.get(f"/v1/prediction/result/{job_id}").json()["status"] == "STARTED")
        assert service.get("/v1/status").json()["total"]["queue_size_atoms"] > 0  # relaxing
        kill_stub(service, "forcefield_0_0")
        kill_stub(service, "generator_0_0")
        killed_at = time.monotonic()
        for thread, outcome in ((relaxing, relaxed), (sampling, sampled)):
            assert_fails_over(service, thread, outcome, killed_at)
            assert outcome["response"].json()["error"].startswith("backend unavailable")
        assert stored_status(tmp_path, job_id) == "STARTED"  # in flight when the service died: not FAILURE
        restarted = start_service(tmp_path, MATSERVE_MODELS="mfd", **slow_phonons)  # the same data dir and replica
        wait_until_ready(restarted)
        deadline = time.monotonic() + 180
        while (body := restarted.get(f"/v1/prediction/result/{job_id}").json())["status"] not in ("SUCCESS", "FAILURE"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert body["status"] == "SUCCESS" and "ml_Cv" in body

        # Then tritonserver itself dies: not ready at once, and an exit non-zero within seconds.
        os.kill(restarted.triton_pid(), signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            assert restarted.get("/v1/health/ready", timeout=5).status_code == 503
        except httpx.TransportError:
            pass  # already gone: that is also not ready
        assert restarted.process.wait(timeout=15) != 0
        assert time.monotonic() - killed_at < 10
    finally:
        for running in (service, restarted):
            if running is not None:
                stop(running)


def stored_status(tmp_path, job_id: str) -> str:
    """The job's status in the stopped service's SQLite store."""
    from gateway.jobs.sqlite_store import SQLiteJobStore

    async def read() -> str:
        store = SQLiteJobStore(tmp_path / "data" / "jobs.sqlite3")
        try:
            return (await store.get(job_id)).status.value
        finally:
            await store.close()

    return asyncio.run(read())
