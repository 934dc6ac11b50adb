"""The plmf entry of the registry and its string output (ml_egap_type) through the gateway.

The fake stands in for Triton only at the wire: ``infer`` returns the arrays that the gRPC client
hands back for the plmf model's outputs (TYPE_STRING as an object array of bytes), and the
gateway's real ``TritonClient.property`` turns them into response fields.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from gateway.property_models import load_registry
from gateway.triton_client import TritonClient
from matserve.contract import STRUCTURE_ARRAYS
from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakeTriton
from tests.gateway.test_predict import NACL_POSCAR, poll

PLMF_FIELDS = [  # the seed's plmf response, in its order
    "ml_egap_type", "ml_egap", "ml_energy_per_atom", "ml_ael_bulk_modulus_vrh", "ml_ael_shear_modulus_vrh",
    "ml_agl_debye", "ml_agl_heat_capacity_Cp_300K", "ml_agl_heat_capacity_Cv_300K",
    "ml_agl_heat_capacity_Cp_300K_per_atom", "ml_agl_heat_capacity_Cv_300K_per_atom",
    "ml_agl_thermal_conductivity_300K", "ml_agl_thermal_expansion_300K",
]
CONFIG = Path(__file__).resolve().parents[2] / "model_repository" / "plmf" / "config.pbtxt"


class WirePlmfTriton(FakeTriton):
    """Answers plmf calls with Triton-shaped output arrays; the conversion is the gateway's own."""

    property = TritonClient.property

    def __init__(self):
        super().__init__()
        self.models: list[str] = []

    async def infer(self, model, inputs, outputs):
        self.models.append(model)
        arrays = {name: np.array([float(i)]) for i, name in enumerate(outputs)}
        arrays["ML_EGAP_TYPE"] = np.array([b"insulator"], dtype=object)
        arrays["DESCRIPTION"] = np.array([b"plmf on the wire"], dtype=object)
        return arrays


@pytest.fixture
def client():
    with make_client(WirePlmfTriton()) as test_client:
        wait_ready(test_client)
        yield test_client


def test_registry_maps_every_plmf_field_and_the_triton_config_has_those_outputs():
    plmf = load_registry()["plmf"]
    assert sorted(plmf.outputs.values()) == sorted(PLMF_FIELDS)
    declared = re.findall(r'name: "(\w+)"', CONFIG.read_text())
    assert set(plmf.outputs) | {"DESCRIPTION", *STRUCTURE_ARRAYS, "plmf"} == set(declared)
    assert 'name: "ML_EGAP_TYPE"            data_type: TYPE_STRING' in CONFIG.read_text()


def test_prediction_job_returns_every_plmf_field_with_a_string_gap_type(client):
    job = client.post("/v1/plmf/prediction", data={"file": NACL_POSCAR}).json()
    assert job["model"] == "plmf"
    body = poll(client, job["id"])
    assert body["status"] == "SUCCESS" and body["description"] == "plmf on the wire"
    assert body["citation"].startswith("O. Isayev")
    assert set(PLMF_FIELDS) <= set(body)
    assert body["ml_egap_type"] == "insulator"
    assert all(isinstance(body[field], float) for field in PLMF_FIELDS[1:])
    assert client.app.state.services.triton.models == ["plmf"]


def test_synchronous_plmf_prediction(client):
    body = client.post("/v1/plmf/predict", data={"file": NACL_POSCAR}).json()
    assert body["status"] == "SUCCESS" and body["model"] == "plmf" and body["ml_egap_type"] == "insulator"
