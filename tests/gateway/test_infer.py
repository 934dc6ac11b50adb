import json

import numpy as np

from matserve.relax import RelaxOptions
from matserve.structures import System
from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakeTriton

PERIODIC = {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1], "cell": [10, 0, 0, 0, 10, 0, 0, 0, 10],
            "structure_id": "box"}
MOLECULE = {"coord": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "numbers": [1, 1]}


def test_response_has_the_documented_fields(client):
    response = client.post("/v1/infer", json={"atoms": [PERIODIC, MOLECULE], "info": "run-7"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"atoms", "status", "info"}
    assert body["status"] == "Success" and body["info"] == "run-7"
    periodic, molecule = body["atoms"]
    assert set(periodic) == {"coord", "numbers", "cell", "pbc", "energy", "forces", "stress", "converged",
                             "optimizer_nsteps", "structure_id"}
    assert periodic["structure_id"] == "box" and periodic["pbc"] == [True, True, True]
    assert len(periodic["stress"]) == 9 and len(periodic["forces"]) == 6
    assert set(molecule) == {"coord", "numbers", "pbc", "energy", "forces", "converged", "optimizer_nsteps"}
    assert molecule["pbc"] == [False, False, False]


def test_request_options_override_defaults(client, fake: FakeTriton):
    client.post("/v1/infer", json={"atoms": [MOLECULE]})
    client.post("/v1/infer", json={"atoms": [PERIODIC], "opttol": 0.01, "opttol_pressure": 2, "cellopt": True,
                                   "max_steps": 7})
    default, custom = fake.options
    assert (default.fmax, default.pressure_tol_kbar, default.cellopt, default.max_steps) == (0.005, 0.5, False, 2000)
    assert (custom.fmax, custom.pressure_tol_kbar, custom.cellopt, custom.max_steps) == (0.01, 2.0, True, 7)


def test_streamed_lines_come_as_structures_finish_then_the_closing_line(client):
    body = {"atoms": [PERIODIC, MOLECULE], "info": "run-8"}
    with client.stream("POST", "/v1/infer", json=body, headers={"accept": "application/x-ndjson"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    whole = client.post("/v1/infer", json=body).json()
    first, second, closing = lines  # the fake finishes the last structure first
    assert first == {"index": 1, **whole["atoms"][1]}
    assert second == {"index": 0, **whole["atoms"][0]}
    assert closing == {"status": "Success", "info": "run-8"}


def test_a_full_queue_answers_503_with_retry_after_and_the_envelope():
    with make_client(FakeTriton(), queue_atoms=4) as client:
        wait_ready(client)
        queue = client.app.state.services.relax_queue
        held = queue.admit([System(np.zeros((3, 3)), [1, 1, 1])], [RelaxOptions()])  # 3 of the 4 atoms
        response = client.post("/v1/infer", json={"atoms": [MOLECULE]})
        held.release()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        message = ("the relaxation queue is full: 3 atoms queued, this request adds 2, the bound is 4; "
                   "retry after 5 s")
        assert response.json() == {"error": message, "detail": [{"loc": [], "msg": message, "type": "saturated"}]}
        assert client.post("/v1/infer", json={"atoms": [MOLECULE]}).status_code == 200


class SlowTriton(FakeTriton):
    """Each structure takes 0.2 s; records whether its stream was closed before the end."""

    def __init__(self):
        super().__init__()
        self.closed_early = False

    async def relax_stream(self, systems, options, atom_budget=0, model="forcefield"):
        import asyncio

        try:
            for index, result in enumerate(await self.forcefield(systems, options, atom_budget)):
                await asyncio.sleep(0.2)
                yield index, result
        except (GeneratorExit, asyncio.CancelledError):
            self.closed_early = True
            raise


def test_a_deadline_answers_504_and_cancels_the_work():
    fake = SlowTriton()
    with make_client(fake) as client:
        wait_ready(client)
        response = client.post("/v1/infer", json={"atoms": [MOLECULE] * 5, "timeout_s": 0.5})
        assert response.status_code == 504
        message = "the relaxation was not finished within timeout_s=0.5 s; the work was cancelled"
        assert response.json() == {"error": message, "detail": [{"loc": [], "msg": message, "type": "timeout"}]}
        assert fake.closed_early
        assert client.get("/v1/status").json()["total"]["queue_size_atoms"] == 0
        with client.stream("POST", "/v1/infer", json={"atoms": [MOLECULE] * 5, "timeout_s": 0.5},
                           headers={"accept": "application/x-ndjson"}) as streamed:
            lines = [json.loads(line) for line in streamed.iter_lines() if line]
        assert [line["index"] for line in lines[:-1]] == [0, 1]
        assert lines[-1] == {"status": "Timeout", "error": message}
        assert client.post("/v1/infer", json={"atoms": [MOLECULE], "timeout_s": 5}).status_code == 200
