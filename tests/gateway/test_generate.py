"""/v1/generate (fast, with a Triton fake that answers a real CrystaLLM-format CIF; integration runs the model)."""

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matserve.alignn.predictor import FormationEnergyModel
from matserve.generator.cif_format import postprocess, to_crystallm_cif
from matserve.relax import RelaxResult
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


# ---- "relax": true (our extension) and the answer without it -----------------------------------------------------

BROKEN = "data_Na4Cl4\n_cell_length_a 5.6\n\n"


def rock_salt_cif(a: float, cation: str = "Na") -> str:
    structure = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return to_crystallm_cif(structure)


class RelaxingFake(FakeAlignnTriton):
    """The generator answers ``answers`` in turn; the force field "relaxes" a structure by
    stretching it 1 %, at an energy per atom that is lowest for a cubic cell of 4 Å."""

    def __init__(self, answers: list[tuple[str, str]]):
        super().__init__(answers[0][0])
        self.answers = answers
        self.relaxed: list[System] = []
        self.relax_options = []

    async def relax_stream(self, systems, options, atom_budget=0, model="forcefield"):
        self.relaxed += systems
        self.relax_options += options
        for index in reversed(range(len(systems))):  # in any order, as a running batch finishes them
            system = systems[index]
            a = float(np.linalg.norm(system.cell[0]))
            stretched = System(system.positions * 1.01, system.numbers, system.cell * 1.01, system.pbc)
            yield index, RelaxResult(stretched, system.n_atoms * (-3.0 + (a - 4.0) ** 2),
                                     np.zeros((system.n_atoms, 3)), np.zeros((3, 3)), index != 0, 7)


def relax_client(answers: list[tuple[str, str]]):
    return generator_client(RelaxingFake(answers))


def test_without_relax_the_body_is_byte_for_byte_todays(nacl_cif):
    answers = [(BROKEN, "stop"), (nacl_cif, "stop")]
    with generator_client(FakeGeneratorTriton(nacl_cif, answers)) as client:
        every = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 2,
                                                  "all": True, "seed": 1})
        first = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 2,
                                                  "seed": 1})
    echoed = {"comp": "Na1Cl1", "z": 4}
    broken = {"input": echoed, "generated": BROKEN, "valid": False,
              "messages": ["cif: no _symmetry_equiv_pos_as_xyz loop"]}
    valid = {"input": echoed, "generated": postprocess(nacl_cif), "valid": True, "messages": [None]}
    assert every.content == json.dumps({"cifs": [broken, valid]}, separators=(",", ":")).encode()
    assert first.content == json.dumps({"cifs": [valid]}, separators=(",", ":")).encode()


def test_relaxed_candidates_come_lowest_energy_first_valid_before_not():
    # 3.6 Å has the lowest energy, but its relaxed bonds are a third short: invalid, so after the valid ones
    sizes = [7.0, 5.7, 3.6, 4.6]  # over 20 % apart: four distinct structures, each relaxed
    with relax_client([(rock_salt_cif(a), "stop") for a in sizes]) as client:
        body = {"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 4, "seed": 0, "relax": True}
        every = client.post("/v1/generate", json={**body, "all": True}).json()["cifs"]
        (best,) = client.post("/v1/generate", json=body).json()["cifs"]
    stretched = [round(Structure.from_str(c["relaxed"], fmt="cif").lattice.a, 3) for c in every]
    assert stretched == [round(1.01 * a, 3) for a in (4.6, 5.7, 7.0, 3.6)]
    assert [c["validity"]["valid"] for c in every] == [True, True, True, False]
    assert every[3]["validity"]["messages"][0].startswith("bonds: ")
    assert [c["energy_per_atom"] for c in every] == pytest.approx([-3 + 0.6**2, -3 + 1.7**2, -3 + 3.0**2, -3 + 0.4**2])
    assert best == every[0]
    assert set(best) == {"input", "generated", "valid", "messages", "relaxed", "energy_per_atom", "relax_converged",
                         "validity"}
    assert best["validity"] == {"valid": True, "messages": []} and best["messages"] == [None]
    assert best["relaxed"].startswith("data_Na4Cl4\n") and "_symmetry_space_group_name_H-M Fm-3m" in best["relaxed"]
    assert "_symmetry_equiv_pos_as_xyz" in best["relaxed"] and "_atom_type_electronegativity" not in best["relaxed"]
    assert [c["relax_converged"] for c in every] == [True, True, False, True]  # the fake never converges 7 Å


def test_relaxation_is_of_the_cell_too_through_the_relaxation_queue():
    fake = RelaxingFake([(rock_salt_cif(5.69), "stop"), (rock_salt_cif(5.72), "stop"), (rock_salt_cif(7.0), "stop")])
    with generator_client(fake) as client:
        every = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 3,
                                                  "all": True, "relax": True}).json()["cifs"]
        status = client.get("/v1/status").json()
    # 5.69 and 5.72 Å are one structure to StructureMatcher: relaxed once, both get its result
    assert [round(float(np.linalg.norm(s.cell[0])), 2) for s in fake.relaxed] == [5.69, 7.0]
    assert all(o.cellopt and o.fmax == 0.05 and o.max_steps == 500 for o in fake.relax_options)
    assert every[0]["generated"] != every[1]["generated"] and every[0]["relaxed"] == every[1]["relaxed"]
    assert status["total"]["tasks_received"] == 2 and status["total"]["tasks_completed"] == 2
    assert status["total"]["queue_size_atoms"] == 0


def test_a_candidate_that_does_not_parse_is_not_relaxed_and_says_why(nacl_cif):
    answers = [(BROKEN, "stop"), (rock_salt_cif(5.69, "K"), "stop"), (nacl_cif, "stop")]
    fake = RelaxingFake(answers)
    with generator_client(fake) as client:
        every = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4}, "n": 3,
                                                  "all": True, "relax": True}).json()["cifs"]
    assert len(fake.relaxed) == 1  # only the rock salt of the requested composition
    relaxed, broken, potassium = every
    assert "relaxed" in relaxed and relaxed["generated"] == postprocess(nacl_cif)
    assert broken == {"input": {"comp": "Na1Cl1", "z": 4}, "generated": BROKEN, "valid": False,
                      "messages": ["cif: no _symmetry_equiv_pos_as_xyz loop",
                                   "relax: the generated CIF does not parse; not relaxed"]}
    assert potassium["messages"] == ["relax: the generated CIF holds KCl, not the requested NaCl; not relaxed"]
    assert "relaxed" not in potassium and "energy_per_atom" not in potassium


def test_fe_with_relax_is_of_the_relaxed_structure(nacl_cif):
    with relax_client([(nacl_cif, "stop")]) as client:
        (entry,) = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4},
                                                      "relax": True, "fe": True}).json()["cifs"]
    relaxed = System.from_pymatgen(Structure.from_str(entry["relaxed"], fmt="cif"))
    generated = System.from_pymatgen(Structure.from_str(entry["generated"], fmt="cif"))
    model = FormationEnergyModel()
    assert entry["fe"] == pytest.approx(float(model.predict([relaxed])[0]), abs=1e-5)
    assert entry["fe"] != pytest.approx(float(model.predict([generated])[0]), abs=1e-5)


def test_a_full_relaxation_queue_is_503_with_retry_after(nacl_cif):
    with relax_client([(nacl_cif, "stop")]) as client:
        client.app.state.services.relax_queue.atoms.take(10**6)  # someone else's atoms fill the queue
        response = client.post("/v1/generate", json={"model": "small", "message": {"comp": "NaCl", "z": 4},
                                                      "relax": True})
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert response.json()["error"].startswith("the relaxation queue is full")
