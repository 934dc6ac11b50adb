"""AFLOW-ML style prediction routes (fast, with a small Triton fake; tests/integration runs the real model)."""

import time

import pytest

from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakePropertyTriton

NACL_POSCAR = """NaCl
1.0
0.0 2.82 2.82
2.82 0.0 2.82
2.82 2.82 0.0
Na Cl
1 1
Direct
0.0 0.0 0.0
0.5 0.5 0.5
"""

CU_CIF = """data_Cu
_cell_length_a 3.61
_cell_length_b 3.61
_cell_length_c 3.61
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu1 Cu 0 0 0
"""


@pytest.fixture
def client():
    with make_client(FakePropertyTriton()) as test_client:
        wait_ready(test_client)
        yield test_client


def poll(client, job_id, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/v1/prediction/result/{job_id}").json()
        if body["status"] in ("SUCCESS", "FAILURE"):
            return body
        time.sleep(0.02)
    raise AssertionError("job did not finish")


@pytest.mark.parametrize("how", ["form", "multipart", "json", "raw"])
def test_submit_then_poll_gives_the_model_fields(client, how):
    send = {
        "form": lambda: client.post("/v1/mfd/prediction", data={"file": NACL_POSCAR}),
        "multipart": lambda: client.post("/v1/mfd/prediction", files={"file": ("nacl.poscar", NACL_POSCAR)}),
        "json": lambda: client.post("/v1/mfd/prediction", json={"file": NACL_POSCAR}),
        "raw": lambda: client.post("/v1/mfd/prediction", content=NACL_POSCAR, headers={"content-type": "text/plain"}),
    }[how]
    response = send()
    assert response.status_code == 200
    submitted = response.json()
    assert set(submitted) == {"id", "model", "results_endpoint"}
    assert submitted["model"] == "mfd"
    assert submitted["results_endpoint"] == f"/prediction/result/{submitted['id']}"
    body = poll(client, submitted["id"])
    citation = client.app.state.services.property_models["mfd"].citation
    assert body == {"status": "SUCCESS", "description": "fake phonons", "model": "mfd", "citation": citation,
                    "ml_Cv": 1.0, "ml_Fvib": 2.0, "ml_Svib": 3.0}


def test_cif_is_recognised(client):
    job = client.post("/v1/mfd/prediction", data={"file": CU_CIF}).json()
    assert poll(client, job["id"])["status"] == "SUCCESS"


def test_model_failure_is_reported_in_the_job(client):
    gold = NACL_POSCAR.replace("Na Cl", "Au Cl")
    job = client.post("/v1/mfd/prediction", data={"file": gold}).json()
    assert poll(client, job["id"]) == {"status": "FAILURE", "description": "gold is not welcome here"}


def test_unknown_model_is_404_listing_the_models(client):
    response = client.post("/v1/nonesuch/prediction", data={"file": NACL_POSCAR})
    assert response.status_code == 404
    available = ", ".join(sorted(client.app.state.services.property_models))
    assert "alignn" in available and "mfd" in available
    assert response.json() == {
        "error": f"model 'nonesuch' is not available; available models: {available}",
        "detail": [{"loc": ["path", "model"], "msg": "unknown model 'nonesuch'", "type": "not_found"}],
    }


def test_an_atom_far_from_all_others_is_422_for_a_graph_model(client):
    lonely = "lonely\n1.0\n30 0 0\n0 30 0\n0 0 30\nNa Cl\n2 1\nCartesian\n0 0 0\n2.8 0 0\n15 15 15\n"
    response = client.post("/v1/alignn/prediction", data={"file": lonely})
    assert response.status_code == 422
    assert response.json()["error"] == "atom 2 has no neighbour within 8 Å, which alignn needs"
    assert client.post("/v1/mfd/prediction", data={"file": lonely}).status_code == 200  # phonons do not care


def test_unreadable_structure_is_422_with_the_reason(client):
    response = client.post("/v1/mfd/prediction", data={"file": "this is not a structure"})
    assert response.status_code == 422
    message = ("the file is neither a CIF nor a POSCAR: it has 1 line, and a VASP 5 POSCAR has a comment line, "
               "a scaling factor, 3 lattice vectors, the element symbols, the atom counts, Direct or Cartesian, "
               "then one line of 3 coordinates per atom")
    assert response.json() == {"error": message, "detail": [{"loc": ["body", "file"], "msg": message,
                                                             "type": "value_error"}]}


def test_empty_and_missing_files_are_422(client):
    assert client.post("/v1/mfd/prediction", data={"file": ""}).json()["error"] == "the structure file is empty"
    response = client.post("/v1/mfd/prediction", data={"other": "x"})
    assert response.status_code == 422 and response.json()["error"] == "form field 'file' is missing"


def test_unsupported_element_is_422(client):
    response = client.post("/v1/mfd/prediction", data={"file": NACL_POSCAR.replace("Na Cl", "Fm Cl")})
    assert response.status_code == 422
    assert response.json()["error"] == ("mfd computes with the force field 'chgnet', which does not support atomic "
                                        "numbers [100]")


def test_each_property_model_checks_its_own_elements(client):
    americium = NACL_POSCAR.replace("Na Cl", "Am Cl")  # Z 95: in ALIGNN's table (H-Fm) and plmf's (H-Cm), not CHGNet's
    for model in ("alignn", "plmf"):
        response = client.post(f"/v1/{model}/prediction", data={"file": americium})
        assert response.status_code == 200, response.text
        assert poll(client, response.json()["id"])["status"] == "SUCCESS"
    refused = client.post("/v1/mfd/prediction", data={"file": americium})
    assert refused.status_code == 422
    assert refused.json()["error"] == ("mfd computes with the force field 'chgnet', which does not support atomic "
                                       "numbers [95]")
    fermium = client.post("/v1/plmf/prediction", data={"file": NACL_POSCAR.replace("Na Cl", "Fm Cl")})
    assert fermium.status_code == 422 and fermium.json()["error"] == "plmf does not support atomic numbers [100]"
    fermium_alignn = client.post("/v1/alignn/prediction", data={"file": NACL_POSCAR.replace("Na Cl", "Fm Cl")})
    assert fermium_alignn.status_code == 200


def test_unknown_job_is_404(client):
    response = client.get("/v1/prediction/result/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "no prediction job 'nope'"


def test_synchronous_predict_answers_directly(client):
    response = client.post("/v1/mfd/predict", data={"file": NACL_POSCAR})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SUCCESS" and body["ml_Fvib"] == 2.0 and body["model"] == "mfd"


def test_jobs_survive_a_restart_of_the_gateway(tmp_path):
    settings = {"data_dir": str(tmp_path), "replica_id": "gw-1"}
    with make_client(FakePropertyTriton(), **settings) as first:
        wait_ready(first)
        job = first.post("/v1/mfd/prediction", data={"file": NACL_POSCAR}).json()
        poll(first, job["id"])
    with make_client(FakePropertyTriton(), **settings) as second:
        assert second.get(f"/v1/prediction/result/{job['id']}").json()["status"] == "SUCCESS"
