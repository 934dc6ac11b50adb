"""Several force fields in one deployment: each its own Triton model and queue, chosen by ``model``."""

import pytest

from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakeTriton
from tests.gateway.test_errors import H2

SERVED = "chgnet,sevennet-l3i5"


def with_atoms(**fields) -> dict:
    return {"atoms": [H2], **fields}


class PartlyReadyTriton(FakeTriton):
    """Every model ready but one."""

    def __init__(self, down: str):
        super().__init__()
        self.down = down

    async def ready_models(self, models):
        return [model for model in models if model != self.down]


@pytest.fixture
def two():
    fake = FakeTriton()
    with make_client(fake, forcefields=SERVED) as client:
        wait_ready(client)
        yield client, fake


def test_a_request_is_relaxed_by_the_model_it_names_default_the_first(two):
    client, fake = two
    assert client.post("/v1/infer", json=with_atoms()).status_code == 200
    assert client.post("/v1/infer", json=with_atoms(model="sevennet-l3i5")).status_code == 200
    assert client.post("/v1/infer", json=with_atoms(model="chgnet")).status_code == 200
    assert fake.forcefield_models == ["forcefield", "forcefield-sevennet-l3i5", "forcefield"]


def test_an_unknown_model_is_422_naming_those_served(two):
    client, fake = two
    response = client.post("/v1/infer", json=with_atoms(model="mace"))
    message = "force field 'mace' is not served here; served: chgnet, sevennet-l3i5"
    assert response.status_code == 422
    assert response.json() == {"error": f"model: {message}",
                               "detail": [{"loc": ["body", "model"], "msg": message, "type": "value_error"}]}
    assert fake.forcefield_models == []


def test_status_and_metadata_list_each_force_field_with_its_own_budget(two):
    client, _ = two
    status = client.get("/v1/status").json()
    assert [(f["name"], f["triton_model"], f["batch_size"]) for f in status["forcefields"]] == \
        [("chgnet", "forcefield", 64), ("sevennet-l3i5", "forcefield-sevennet-l3i5", 64)]
    models = client.get("/v1/metadata").json()["models"]
    forcefields = [(m["name"], m["triton_model"], m["weights"]["name"]) for m in models[:2]]
    assert forcefields == [("forcefield", "forcefield", "CHGNet 0.3.0"),
                           ("forcefield/sevennet-l3i5", "forcefield-sevennet-l3i5", "SevenNet-l3i5")]


def test_readiness_names_the_force_field_model_that_is_not_ready():
    with make_client(PartlyReadyTriton("forcefield-sevennet-l3i5"), forcefields=SERVED) as client:
        response = client.get("/v1/health/ready")
        assert response.status_code == 503
        assert response.json()["backends_not_ready"] == ["forcefield-sevennet-l3i5"]
        assert response.json()["backends_alive"] == response.json()["backends_total"] - 1


def test_a_relaxation_and_mfd_pod_serves_only_those():
    fake = FakeTriton()
    with make_client(fake, models="mfd") as client:
        wait_ready(client)
        assert client.get("/v1/health/ready").json()["backends_total"] == 2  # forcefield and mfd
        assert [m["name"] for m in client.get("/v1/metadata").json()["models"]] == ["forcefield", "mfd"]
        assert client.post("/v1/infer", json=with_atoms()).status_code == 200
        unserved = client.post("/v1/alignn/prediction", data={"file": "x"})
        assert unserved.status_code == 404
        assert unserved.json()["error"] == "model 'alignn' is not available; available models: mfd"
        assert client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl"}}).status_code == 404


def test_models_name_only_what_can_be_left_out():
    from matserve.settings import Settings

    assert Settings(models="none").served_models == []
    with pytest.raises(ValueError, match=r"unknown models \['forcefield'\]"):
        Settings(models="forcefield,mfd")
