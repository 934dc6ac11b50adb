"""/v1/generate (fast, with a Triton fake that answers a real CrystaLLM-format CIF; integration runs the model)."""

from contextlib import contextmanager
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from matserve.alignn.predictor import FormationEnergyModel
from matserve.generator.cif_format import to_crystallm_cif
from matserve.structures import System
from tests.gateway.conftest import make_client, wait_ready
from tests.gateway.fakes import FakeAlignnTriton, FakeGeneratorTriton


@pytest.fixture(scope="module")
def nacl_cif() -> str:
    structure = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return to_crystallm_cif(structure)


@pytest.fixture
def fake(nacl_cif):
    return FakeGeneratorTriton(nacl_cif)


@contextmanager
def generator_client(triton, checkpoint: Path = Path(__file__)):
    with make_client(triton, generator_small=str(checkpoint)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def client(fake):
    with generator_client(fake) as test_client:
        yield test_client


@pytest.fixture
def fake_alignn(nacl_cif):
    return FakeAlignnTriton(nacl_cif)


def test_seed_example_returns_the_documented_shape(client, fake):
    response = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4, "sg": "Fm-3m"}})
    assert response.status_code == 200
    (entry,) = response.json()["cifs"]
    assert set(entry) == {"input", "generated", "valid", "messages"}
    assert entry["input"] == {"comp": "Na1Cl1", "z": 4, "sg": "Fm-3m"}
    assert entry["valid"] is True and entry["messages"] == [None]
    assert "_symmetry_equiv_pos_as_xyz" in entry["generated"] and "_atom_type_electronegativity" not in entry["generated"]
    assert fake.prompts[0].startswith("data_Na4Cl4\n") and fake.prompts[0].endswith("_symmetry_space_group_name_H-M Fm-3m\n")


def test_the_echoed_input_is_the_reduced_formula_that_z_multiplies(client, fake):
    body = client.post("/v1/generate", json={"model": "small", "message": {"comp": "Na2Cl2", "z": 2}}).json()
    assert body["cifs"][0]["input"] == {"comp": "Na1Cl1", "z": 2}
    assert fake.prompts == ["data_Na2Cl2\n"]


def test_without_z_all_six_values_go_in_one_batch(client, fake):
    body = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl"}, "all": True}).json()
    assert [c["input"]["z"] for c in body["cifs"]] == [1, 2, 3, 4, 6, 8]
    assert [p.split("\n")[0] for p in fake.prompts] == [f"data_Na{z}Cl{z}" for z in (1, 2, 3, 4, 6, 8)]


def test_fe_is_alignns_formation_energy_of_the_generated_cif(fake_alignn, nacl_cif):
    with generator_client(fake_alignn) as client:
        response = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}, "fe": True})
    (entry,) = response.json()["cifs"]
    assert set(entry) == {"input", "generated", "valid", "messages", "fe"} and entry["messages"] == [None]
    expected = FormationEnergyModel().predict([System.from_pymatgen(Structure.from_str(entry["generated"], fmt="cif"))])
    assert entry["fe"] == pytest.approx(float(expected[0]), abs=1e-6)


def test_fe_of_several_candidates_is_one_batched_call(fake_alignn):
    with generator_client(fake_alignn) as client:
        body = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl"}, "fe": True,
                                                 "all": True}).json()
    assert len(body["cifs"]) == 6 and all(isinstance(c["fe"], float) for c in body["cifs"])
    assert fake_alignn.fe_calls == [6]


def test_fe_is_absent_with_a_message_when_the_cif_does_not_parse():
    with generator_client(FakeAlignnTriton("data_Na4Cl4\n_cell_length_a 5.6\n\n")) as client:
        (entry,) = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4},
                                                      "fe": True}).json()["cifs"]
    assert "fe" not in entry
    assert entry["messages"][-1] == "fe: the generated CIF does not parse; no formation energy"


def test_without_fe_no_formation_energy_is_asked_for(fake_alignn):
    with generator_client(fake_alignn) as client:
        (entry,) = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}}).json()["cifs"]
    assert "fe" not in entry and fake_alignn.fe_calls == []


def test_n_candidates_return_the_first_valid_one_or_all(nacl_cif):
    broken = "data_Na4Cl4\n_cell_length_a 5.6\n\n"
    answers = [(broken, "stop"), (nacl_cif, "length"), (nacl_cif, "stop"), (nacl_cif, "stop")]
    with generator_client(FakeGeneratorTriton(nacl_cif, answers)) as client:
        body = {"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 4}
        (first_valid,) = client.post("/v1/generate", json=body).json()["cifs"]
        every = client.post("/v1/generate", json={**body, "all": True}).json()["cifs"]
        body["n"] = 2
        (none_valid,) = client.post("/v1/generate", json=body).json()["cifs"]
    assert first_valid["valid"] is True and first_valid["messages"] == [None]
    assert [c["valid"] for c in every] == [False, False, True, True]
    assert every[0]["generated"] == broken and every[0]["messages"][0].startswith("cif: ")
    # the text cut off by the token cap reads as a whole CIF, but is not valid
    assert every[1]["messages"] == ["generation: stopped at the model's token cap before the CIF ended"]
    assert none_valid == every[0]  # no valid candidate: the first one


def test_a_key_is_needed_when_keys_are_configured(fake):
    with make_client(fake, api_keys="k1", generator_small=__file__) as client:
        wait_ready(client)
        body = {"model": "small", "message": {"comp": "NaCl", "z": 4}}
        assert client.post("/v1/generate", json=body).status_code == 401
        assert client.post("/v1/generate", json=body, headers={"x-api-key": "nope"}).status_code == 401
        assert client.post("/v1/generate", json=body, headers={"x-api-key": "k1"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"message": {"comp": "NaCl", "z": 4}}, "model: Field required"),
        ({"model": "large", "message": {"comp": "NaCl", "z": 4}}, "model 'large' is not available; models available: small"),
        ({"model": "huge", "message": {"comp": "NaCl", "z": 4}},
         "model 'huge' is not available (models are small, medium, large); models available: small"),
        ({"model": "small", "message": {"z": 4}}, "message.comp: Field required"),
        ({"model": "small", "message": {"comp": "Xx2O", "z": 4}}, "'comp' cannot be parsed as a composition: 'Xx2O'"),
        ({"model": "small", "message": {"comp": "Fe0.5O", "z": 1}},
         "'comp' must be a stoichiometric composition with whole numbers of atoms: 'Fe0.5O'"),
        ({"model": "small", "message": {"comp": "NaCl", "z": 0}}, "message.z: Input should be greater than or equal to 1"),
        ({"model": "small", "message": {"comp": "NaCl", "z": 4}, "seed": 2**63},
         "seed: Input should be less than or equal to 9223372036854775807"),
        ({"model": "small", "message": {"comp": "NaCl", "z": 4, "sg": "Fm3m"}},
         "space group 'Fm3m' is not one of CrystaLLM's symbols (such as Fm-3m, P2_1/c)"),
    ],
)
def test_bad_requests_are_400_with_an_error(client, body, error):
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_malformed_json_is_400(client):
    response = client.post("/v1/generate", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "malformed JSON body"


def test_without_configuration_small_is_the_embedded_model(fake):
    with make_client(fake) as client:  # no MATSERVE_GENERATOR_* set
        wait_ready(client)
        response = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}})
        assert response.status_code == 200
        response = client.post("/v1/generate", json={"model": "large", "message": {"comp": "NaCl", "z": 4}})
        assert response.status_code == 400
        assert response.json()["error"] == "model 'large' is not available; models available: small"
