import pytest
from pymatgen.core import Element, Lattice, Structure

from matserve.generator.cif_format import postprocess, to_crystallm_cif
from matserve.generator import validity
from matserve.generator.validity import expected_bond_length, judge, validate


def kinds(messages: tuple[str, ...]) -> set[str]:
    return {m.split(":")[0] for m in messages}


def test_real_crystals_pass(crystallm_cifs):
    for name, cif in crystallm_cifs.items():
        result = validate(postprocess(cif))
        assert result.valid and result.messages == (), name


def test_bonds_to_a_sites_own_periodic_image_have_their_real_length():
    # hcp Mg (a 3.21 Å, c 5.21 Å): six of each atom's twelve neighbours are its own images along a
    magnesium = Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, 1 / 4]])
    result = validate(postprocess(to_crystallm_cif(magnesium)))
    assert result.valid and result.messages == ()
    squeezed = Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(2.0, 5.21), ["Mg"], [[1 / 3, 2 / 3, 1 / 4]])
    (message,) = validate(postprocess(to_crystallm_cif(squeezed))).messages
    assert "Mg-Mg 2.00 Å, expected 3.00 Å" in message


# mp-28865 as CrystaLLM writes it: Cl2 sits on (x, 2x, z), but 2 x 0.0983 is not 0.1967
OS_S2_CL12 = """data_Os3S6Cl36
_symmetry_space_group_name_H-M R-3m
_cell_length_a 10.7046
_cell_length_b 10.7046
_cell_length_c 17.2711
_cell_angle_alpha 90.0000
_cell_angle_beta 90.0000
_cell_angle_gamma 120.0000
_symmetry_Int_Tables_number 166
_chemical_formula_structural Os(SCl6)2
_chemical_formula_sum 'Os3 S6 Cl36'
_cell_volume 1713.9303
_cell_formula_units_Z 3
loop_
_symmetry_equiv_pos_site_id
_symmetry_equiv_pos_as_xyz
1 'x, y, z'
loop_
_atom_site_type_symbol
_atom_site_label
_atom_site_symmetry_multiplicity
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Os Os0 3 0.0000 0.0000 0.0000 1.0
S S1 6 0.0000 0.0000 0.2087 1.0
Cl Cl2 18 0.0983 0.1967 0.7372 1.0
Cl Cl3 18 0.1025 0.2051 0.0794 1.0
"""


def test_rounded_special_positions_are_one_site_each():
    result = validate(postprocess(OS_S2_CL12))
    assert result.valid and result.messages == ()


@pytest.fixture(scope="module")
def bate(crystallm_cifs) -> str:
    return crystallm_cifs["BaTe"]


def broken(cif: str, old: str, new: str) -> str:
    assert old in cif
    return postprocess(cif.replace(old, new))


def test_bad_cell(bate):
    result = validate(broken(bate, "_cell_angle_gamma 90.0000", "_cell_angle_gamma 175.0000"))
    assert not result.valid
    assert "cell: angle 175° outside 10-170°" in result.messages
    # a cell out of bounds is not handed to CrystalNN (which would take hours over this one)
    result = validate(broken(bate, "_cell_length_c 7.0898", "_cell_length_c 1200.0000"))
    assert result.messages == ("cell: length 1200 Å outside 0.5-1000 Å",)


def test_too_sparse_to_judge_bonds(bate):
    result = validate(broken(bate, "_cell_length_c 7.0898", "_cell_length_c 60.0000"))
    assert "bonds: not judged, 377 Å³ per atom is too sparse for a crystal (at most 200)" in result.messages


def test_formulas_that_disagree(bate):
    result = validate(broken(bate, "_chemical_formula_structural BaTe", "_chemical_formula_structural BaTe2"))
    assert result.messages == (
        "formula: data_ BaTe, _chemical_formula_sum BaTe, _chemical_formula_structural BaTe2 disagree",)
    result = validate(broken(bate, "data_Ba4Te4", "data_Ba4Te8"))
    assert kinds(result.messages) == {"formula"}


def test_multiplicities_that_do_not_add_up(bate):
    result = validate(broken(bate, "Te Te1 4", "Te Te1 8"))
    assert result.messages == ("multiplicity: sites add up to Ba4 Te8, _chemical_formula_sum is Ba4 Te4",)


def test_bonds_too_short(bate):
    # the whole cell shrunk to 4.5 Å: still cubic, same formula, but Ba-Te at 2.25 Å
    result = validate(postprocess(bate.replace("7.0898", "4.5000")))
    assert kinds(result.messages) == {"bonds"}
    assert result.messages[0].startswith("bonds: 48 of 48 off their expected length by more than 32%")
    assert "Ba-Te 2.25 Å, expected 3.55 Å" in result.messages[0]


def test_stated_space_group_is_not_the_one_found(bate):
    # F-43m's operators rebuild the same rock salt, whose symmetry is Fm-3m
    result = validate(broken(bate, "_symmetry_space_group_name_H-M Fm-3m", "_symmetry_space_group_name_H-M F-43m"))
    assert result.messages == ("space group: stated F-43m, pymatgen finds Fm-3m at symprec 0.1",)


def test_a_cell_parameter_in_a_loop_is_a_message_not_a_crash(bate):
    result = validate(broken(bate, "_cell_length_a 7.0898\n", "loop_\n_cell_length_a\n7.0898\n7.1000\n"))
    assert result.messages[0].startswith("cell: missing or unreadable parameter")


def test_judge_post_processes_and_checks_a_generated_text(bate):
    judged = judge(bate)
    assert judged.valid and judged.messages == () and judged.cif == postprocess(bate)
    text = "data_BaTe\n_cell_length_a 5.0\n\n"
    judged = judge(text)
    assert not judged.valid and judged.cif == text and judged.messages[0].startswith("cif: ")


def test_judge_turns_a_failing_check_into_a_message(bate, monkeypatch):
    def fails(cif):
        raise IndexError("pymatgen lost its way")

    monkeypatch.setattr(validity, "validate", fails)
    assert judge(bate).messages == ("validity: could not be checked (IndexError: pymatgen lost its way)",)


@pytest.mark.parametrize(("finish_reason", "limit"), [("length", "token cap"), ("time", "time limit")])
def test_a_text_cut_off_is_never_valid(bate, finish_reason, limit):
    judged = judge(bate, finish_reason)
    assert judged.messages == (f"generation: stopped at the model's {limit} before the CIF ended",)
    assert not judged.valid and judged.cif == postprocess(bate)


def test_unreadable_text():
    assert kinds(validate("data_x\n_cell_length_a 5\n").messages) >= {"cell", "formula"}
    assert not validate("not a cif").valid


def test_expected_bond_lengths():
    # ionic when the electronegativity gap is >= 1.7: Na+ and Cl- radii
    na_cl = Element("Na").average_cationic_radius + Element("Cl").average_anionic_radius
    assert expected_bond_length(Element("Na"), Element("Cl")) == pytest.approx(float(na_cl))
    assert expected_bond_length(Element("Cl"), Element("Na")) == pytest.approx(float(na_cl))
    # covalent otherwise: atomic radii
    assert expected_bond_length(Element("Si"), Element("O")) == pytest.approx(1.10 + 0.60)
    assert expected_bond_length(Element("Fr"), Element("Si")) is None  # pymatgen has no Fr atomic radius
