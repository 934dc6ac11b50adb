"""The candidates of /v1/generate as plain Python: composition, prompts, judging, which are returned."""

import pytest
from pymatgen.core import Lattice, Structure

from matserve.generator.candidates import (add_message, candidate_prompts, first_valid, generated_cif, judged,
                                           normalised_comp, parse_cif, parse_structure)
from matserve.generator.cif_format import postprocess, to_crystallm_cif

BROKEN = "data_Na4Cl4\n_cell_length_a 5.6\n\n"


@pytest.fixture(scope="module")
def nacl_cif() -> str:
    structure = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return to_crystallm_cif(structure)


@pytest.mark.parametrize(("comp", "normalised"), [("NaCl", "Na1Cl1"), ("Na2Cl2", "Na1Cl1"), ("Ba2MnCr", "Ba2Mn1Cr1"),
                                                  ("SiO2", "Si1O2"), ("O2Si", "O2Si1")])
def test_the_composition_is_the_reduced_formula_that_z_multiplies(comp, normalised):
    assert normalised_comp(comp) == normalised


@pytest.mark.parametrize(("comp", "error"), [
    ("Xx2O", "'comp' cannot be parsed as a composition: 'Xx2O'"),
    ("", "'comp' cannot be parsed as a composition: ''"),
    ("Fe0.5O", "'comp' must be a stoichiometric composition with whole numbers of atoms: 'Fe0.5O'"),
])
def test_what_is_not_a_composition_says_why(comp, error):
    with pytest.raises(ValueError) as raised:
        normalised_comp(comp)
    assert str(raised.value) == error


def test_n_prompts_per_z_and_every_z_without_one():
    pairs = candidate_prompts("Na1Cl1", 4, "Fm-3m", 2)
    assert [echoed for echoed, _ in pairs] == [{"comp": "Na1Cl1", "z": 4, "sg": "Fm-3m"}] * 2
    assert pairs[0][1].startswith("data_Na4Cl4\n") and pairs[0][1].endswith("_symmetry_space_group_name_H-M Fm-3m\n")
    every = candidate_prompts("Na1Cl1", None, None, 1)
    assert [(echoed["z"], prompt) for echoed, prompt in every] == [(z, f"data_Na{z}Cl{z}\n") for z in (1, 2, 3, 4, 6, 8)]
    with pytest.raises(ValueError, match="space group 'Fm3m' is not one of CrystaLLM's symbols"):
        candidate_prompts("Na1Cl1", 4, "Fm3m", 1)


def test_a_judged_candidate_is_what_the_answer_shows(nacl_cif):
    echoed = {"comp": "Na1Cl1", "z": 4}
    assert judged(echoed, nacl_cif, "stop") == {"input": echoed, "generated": postprocess(nacl_cif), "valid": True,
                                               "messages": [None]}
    assert judged(echoed, BROKEN, "stop") == {"input": echoed, "generated": BROKEN, "valid": False,
                                             "messages": ["cif: no _symmetry_equiv_pos_as_xyz loop"]}
    assert judged(echoed, nacl_cif, "length")["messages"] == [
        "generation: stopped at the model's token cap before the CIF ended"]
    assert generated_cif(nacl_cif) == postprocess(nacl_cif) and generated_cif(BROKEN) == BROKEN


def test_the_first_valid_candidate_is_returned_or_the_first_or_all(nacl_cif):
    echoed = {"comp": "Na1Cl1", "z": 4}
    completions = [(echoed, BROKEN, "stop"), (echoed, nacl_cif, "length"), (echoed, nacl_cif, "stop")]
    (chosen,) = first_valid(completions)
    assert chosen["valid"] and chosen["generated"] == postprocess(nacl_cif)
    assert [c["valid"] for c in first_valid(completions, every=True)] == [False, False, True]
    (first,) = first_valid(completions[:2])
    assert first["generated"] == BROKEN


def test_judging_stops_at_the_first_valid_candidate(nacl_cif):
    judged_texts = []

    def completions():
        for text in (nacl_cif, BROKEN):
            judged_texts.append(text)
            yield {"comp": "Na1Cl1", "z": 4}, text, "stop"

    first_valid(completions())
    assert judged_texts == [nacl_cif]


def test_messages_replace_the_lone_none():
    candidate = {"messages": [None]}
    add_message(candidate, "fe: no")
    add_message(candidate, "relax: no")
    assert candidate["messages"] == ["fe: no", "relax: no"]


def test_parsing_a_generated_cif(nacl_cif):
    system = parse_cif(postprocess(nacl_cif))
    assert system is not None and system.n_atoms == 8 and sorted(set(system.numbers)) == [11, 17]
    assert parse_cif(BROKEN) is None and parse_structure("not a cif") is None
