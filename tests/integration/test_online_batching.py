"""In-flight batching across requests, through the real server: each request is answered when its
own structures finish, streamed per structure on request; cancelled work leaves the batch; an
overfull queue answers 503 with Retry-After and loses no accepted request."""

import json
import threading
import time

import httpx
import numpy as np
import pytest

from tests.crystals import nacl, rattled
from tests.integration.conftest import QUEUE_ATOMS

pytestmark = pytest.mark.integration

NDJSON = {"accept": "application/x-ndjson"}


def atoms_json(atoms, **extra):
    return {"coord": atoms.positions.reshape(-1).tolist(), "numbers": atoms.numbers.tolist(),
            "cell": np.array(atoms.cell).reshape(-1).tolist(), **extra}


SLOW_ATOMS = 16


def slow_body(max_steps: int) -> dict:
    """16 atoms that run exactly ``max_steps`` steps (a tolerance no structure reaches)."""
    crystal = rattled(nacl().repeat((2, 2, 2)), amount=0.1, seed=9)
    assert len(crystal) == SLOW_ATOMS
    return {"atoms": [atoms_json(crystal)], "opttol": 1e-9, "max_steps": max_steps}


QUICK = {"atoms": [atoms_json(rattled(nacl(), amount=0.02, seed=1), structure_id="quick")], "opttol": 0.05}


def in_background(service, body: dict, outcome: dict, key: str, **kwargs) -> threading.Thread:
    def post():
        response = service.post("/v1/infer", json=body, **kwargs)
        outcome[key] = (time.monotonic(), response)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def wait_for_queue(service, atoms: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while service.get("/v1/status").json()["total"]["queue_size_atoms"] < atoms:
        assert time.monotonic() < deadline, "the request never reached the queue"
        time.sleep(0.05)


def test_a_quick_structure_overtakes_a_slow_batch_with_its_solo_result(service):
    alone = service.post("/v1/infer", json=QUICK).json()["atoms"][0]
    outcome: dict = {}
    slow = in_background(service, slow_body(80), outcome, "slow")
    wait_for_queue(service, SLOW_ATOMS)
    time.sleep(0.5)  # the slow structure is stepping
    quick = in_background(service, QUICK, outcome, "quick")
    quick.join()
    slow.join()
    quick_done, quick_response = outcome["quick"]
    slow_done, slow_response = outcome["slow"]
    assert quick_done < slow_done
    assert slow_response.json()["atoms"][0]["optimizer_nsteps"] == 80
    shared = quick_response.json()["atoms"][0]
    assert shared["optimizer_nsteps"] == alone["optimizer_nsteps"]
    assert shared["energy"] == pytest.approx(alone["energy"], abs=1e-6)
    np.testing.assert_allclose(shared["coord"], alone["coord"], atol=1e-6)


def test_streamed_lines_equal_the_response_for_the_same_request(service):
    body = {**QUICK, "atoms": [*QUICK["atoms"], slow_body(30)["atoms"][0]], "opttol": 0.05, "max_steps": 30,
            "info": "run 7"}
    whole = service.post("/v1/infer", json=body).json()
    with httpx.stream("POST", service.url + "/v1/infer", json=body, headers=NDJSON, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    *structures, closing = lines
    assert closing == {"status": "Success", "info": "run 7"}
    assert sorted(line["index"] for line in structures) == [0, 1]
    assert structures[0]["index"] == 0  # the quick crystal finished first
    for line in structures:
        expected = whole["atoms"][line.pop("index")]
        assert set(line) == set(expected)
        assert line["optimizer_nsteps"] == expected["optimizer_nsteps"]
        assert line["energy"] == pytest.approx(expected["energy"], abs=1e-6)
        np.testing.assert_allclose(line["coord"], expected["coord"], atol=1e-6)


def test_a_cancelled_request_leaves_the_batch(service):
    with pytest.raises(httpx.ReadTimeout):
        service.post("/v1/infer", json=slow_body(2000), timeout=3.0)  # about 4 minutes of work, abandoned
    deadline = time.monotonic() + 15
    while "relax: cancelled by its caller" not in service.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the model never dropped the abandoned structure"
        time.sleep(0.2)
    status = service.get("/v1/status").json()["total"]
    assert status["queue_size_atoms"] == 0 and status["requests_in_progress"] == 0


def test_an_overfull_queue_answers_503_with_retry_after_and_loses_no_accepted_request(service):
    outcome: dict = {}
    slow = in_background(service, slow_body(40), outcome, "slow")
    wait_for_queue(service, SLOW_ATOMS)
    extra = [slow_body(3) for _ in range(6)]  # 16 atoms each; the queue holds QUEUE_ATOMS (64)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def post(body):
        response = service.post("/v1/infer", json=body)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=post, args=(body,)) for body in extra]
    for thread in threads:
        thread.start()
    for thread in threads + [slow]:
        thread.join()
    accepted = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 503]
    assert len(accepted) + len(refused) == len(extra)
    assert len(accepted) == QUEUE_ATOMS // SLOW_ATOMS - 1 and refused  # the slow one holds a quarter
    for response in refused:
        assert int(response.headers["retry-after"]) >= 1
        assert "queue is full" in response.json()["error"]
    assert all(r.json()["atoms"][0]["optimizer_nsteps"] == 3 for r in accepted)
    assert outcome["slow"][1].json()["atoms"][0]["optimizer_nsteps"] == 40
    status = service.get("/v1/status").json()["total"]
    assert status["queue_size_atoms"] == 0 and status["requests_in_progress"] == 0


def test_a_deadline_answers_504_and_frees_the_batch(service):
    cancelled_before = service.log_path.read_text(errors="replace").count("relax: cancelled by its caller")
    started = time.monotonic()
    response = service.post("/v1/infer", json={**slow_body(2000), "timeout_s": 2})
    assert response.status_code == 504 and time.monotonic() - started < 10
    assert response.json()["detail"][0]["type"] == "timeout"
    deadline = time.monotonic() + 15
    while service.log_path.read_text(errors="replace").count("relax: cancelled by its caller") == cancelled_before:
        assert time.monotonic() < deadline, "the model never dropped the timed-out structure"
        time.sleep(0.2)
    assert service.get("/v1/status").json()["total"]["queue_size_atoms"] == 0
