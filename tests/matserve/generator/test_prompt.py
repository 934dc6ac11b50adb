import re

import pytest

from matserve.generator.prompt import build_prompt, cell_composition
from matserve.generator.tokenizer import Tokenizer


def test_elements_come_in_electronegativity_order():
    assert build_prompt("ClNa") == "data_Na1Cl1\n"
    assert build_prompt("O2Si") == "data_Si1O2\n"
    assert build_prompt("OTiSr3") == "data_Sr3Ti1O1\n"


def test_z_multiplies_the_reduced_formula():
    assert build_prompt("NaCl", z=4) == "data_Na4Cl4\n"
    assert build_prompt("Na2Cl2", z=2) == "data_Na2Cl2\n"
    assert build_prompt("Fe2O3", z=2) == "data_Fe4O6\n"
    assert build_prompt("Na2Cl2") == "data_Na2Cl2\n"  # without Z, the formula is the cell
    assert cell_composition("SrTiO3", z=3).formula == "Sr3 Ti3 O9"


def test_space_group_adds_the_property_block_and_the_sg_line():
    assert build_prompt("BaTe", z=4, space_group="Fm-3m") == (
        "data_Ba4Te4\n"
        "loop_\n"
        "_atom_type_symbol\n"
        "_atom_type_electronegativity\n"
        "_atom_type_radius\n"
        "_atom_type_ionic_radius\n"
        "Ba 0.8900 2.1500 1.4900\n"
        "Te 2.1000 1.4000 1.2933\n"
        "_symmetry_space_group_name_H-M Fm-3m\n"
    )
    ids = Tokenizer().encode(build_prompt("NaCl", z=4, space_group="Fm-3m"))
    assert ids[-3:] == [Tokenizer().ids[t] for t in (" ", "Fm-3m_sg", "\n")]


def test_a_prompt_is_the_start_of_the_training_text(crystallm_cifs):
    tokenizer = Tokenizer()
    for name, cif in crystallm_cifs.items():
        z = int(re.search(r"_cell_formula_units_Z (\d+)", cif)[1])
        sg = re.search(r"_symmetry_space_group_name_H-M (\S+)", cif)[1]
        for prompt in (build_prompt(name, z=z), build_prompt(name, z=z, space_group=sg)):
            assert cif.startswith(prompt), name
            assert tokenizer.encode(cif)[:len(tokenizer.encode(prompt))] == tokenizer.encode(prompt)


@pytest.mark.parametrize("kwargs, message", [
    ({"formula": "NaCl0.5"}, "whole atoms"),
    ({"formula": "NaCl", "z": 0}, "positive"),
    ({"formula": "FrCl"}, "vocabulary: Fr"),
    ({"formula": "NaCl", "space_group": "P6"}, "not one of CrystaLLM's"),
    ({"formula": "NaCl", "space_group": "Fm-3m_sg"}, "not one of CrystaLLM's"),
])
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_prompt(**kwargs)
