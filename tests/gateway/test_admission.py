"""Every queue is bounded: generation sequences and prediction jobs past their bound get 503 with
Retry-After and the envelope, and the bound frees as the work ends."""

import asyncio
import threading

from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakeGeneratorTriton, FakePropertyTriton
from tests.gateway.test_generate import nacl_cif  # noqa: F401 - a fixture
from tests.gateway.test_predict import NACL_POSCAR


def envelope_503(response, message: str) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"  # nothing has finished yet: the default estimate
    assert response.json() == {"error": message, "detail": [{"loc": [], "msg": message, "type": "saturated"}]}


class HeldGenerator(FakeGeneratorTriton):
    """Sampling waits until ``release`` is set."""

    def __init__(self, text: str):
        super().__init__(text)
        self.release = threading.Event()

    async def generate(self, model, prompts, seed, temperature=0.8, top_k=10):
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return await super().generate(model, prompts, seed, temperature, top_k)


def test_generation_sequences_past_the_bound_get_503(nacl_cif):  # noqa: F811
    fake = HeldGenerator(nacl_cif)
    with make_client(fake, queue_sequences=4, generator_small=__file__) as client:
        wait_ready(client)
        body = {"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 3}
        outcome = {}
        first = threading.Thread(target=lambda: outcome.setdefault("first", client.post("/v1/generate", json=body)))
        first.start()
        while client.app.state.services.sequences.held == 0:
            pass
        refused = client.post("/v1/generate", json={**body, "n": 2})
        message = ("the generation queue is full: 3 sequences queued, this request adds 2, the bound is 4; "
                   "retry after 5 s")
        envelope_503(refused, message)
        fake.release.set()
        first.join()
        assert outcome["first"].status_code == 200
        assert client.app.state.services.sequences.held == 0
        assert client.post("/v1/generate", json={**body, "n": 2}).status_code == 200


class HeldProperties(FakePropertyTriton):
    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    async def property(self, model, system):
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return await super().property(model, system)


def test_prediction_jobs_past_the_bound_get_503_and_none_is_lost():
    fake = HeldProperties()
    with make_client(fake, queue_jobs=2) as client:
        wait_ready(client)
        accepted = [client.post("/v1/mfd/prediction", data={"file": NACL_POSCAR}) for _ in range(2)]
        assert [r.status_code for r in accepted] == [200, 200]
        refused = client.post("/v1/mfd/prediction", data={"file": NACL_POSCAR})
        envelope_503(refused, "the prediction queue is full: 2 jobs queued, this request adds 1, the bound is 2; "
                              "retry after 5 s")
        fake.release.set()
        for response in accepted:
            job_id = response.json()["id"]
            while (status := client.get(f"/v1/prediction/result/{job_id}").json()["status"]) != "SUCCESS":
                assert status in ("PENDING", "STARTED")
        assert client.app.state.services.jobs.jobs.held == 0
        assert client.post("/v1/mfd/prediction", data={"file": NACL_POSCAR}).status_code == 200
