import re
import warnings

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition
from pymatgen.io.cif import CifParser

from matserve.generator.cif_format import atom_property_block, postprocess, round_numbers, symmetry_operators


def test_training_text_of_bate(crystallm_cifs):
    cif = crystallm_cifs["BaTe"]
    assert cif.startswith("data_Ba4Te4\nloop_\n_atom_type_symbol\n_atom_type_electronegativity\n"
                          "_atom_type_radius\n_atom_type_ionic_radius\nBa 0.8900 2.1500 1.4900\n"
                          "Te 2.1000 1.4000 1.2933\n_symmetry_space_group_name_H-M Fm-3m\n_cell_length_a 7.0898\n")
    assert "_chemical_formula_sum 'Ba4 Te4'\n" in cif
    assert "_cell_formula_units_Z 4\n" in cif
    # operators reduced to the identity; the sites are the symmetrically distinct ones
    assert "loop_\n_symmetry_equiv_pos_site_id\n_symmetry_equiv_pos_as_xyz\n1 'x, y, z'\nloop_\n" in cif
    assert cif.endswith("Ba Ba0 4 0.0000 0.0000 0.0000 1.0\nTe Te1 4 0.0000 0.0000 0.5000 1.0\n\n")


def test_training_text_is_clean(crystallm_cifs):
    for name, cif in crystallm_cifs.items():
        assert cif.endswith("\n\n") and not cif.endswith("\n\n\n")
        lines = cif[:-2].split("\n")
        assert all(line and line == line.strip() and "  " not in line for line in lines), name
        assert not any(line.startswith("#") for line in lines)
        assert all(len(d) <= 4 for d in re.findall(r"\.(\d+)", cif)), name
        assert lines.count("loop_") == 3  # atom properties, operators, sites


def test_noble_gases_take_crystallms_stand_ins_written_as_it_writes_them():
    # He has no Pauling electronegativity and Xe no atomic radius in pymatgen
    assert atom_property_block(Composition("XeF2")).endswith("Xe 2.6000 2.16 0.6200\nF 3.9800 0.5000 0.7050\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "\nHe 4.16 1.4 0.0000\n" in atom_property_block(Composition("He"))


def test_round_numbers():
    assert round_numbers("0.33333333 1.0 7.08975800 -0.12345 12") == "0.3333 1.0 7.0898 -0.1235 12"


def test_operators_come_from_the_space_group():
    ops = symmetry_operators("Fm-3m")
    assert len(ops) == 192 and ops[0] == "x, y, z" and len(set(ops)) == 192
    assert "x+1/2, y+1/2, z" in ops
    assert symmetry_operators("P1") == ["x, y, z"]
    assert len(symmetry_operators("P2_1/c")) == 4
    with pytest.raises(ValueError, match="unknown space group"):
        symmetry_operators("Xq9")


def test_postprocess_rebuilds_the_crystal(crystallm_cifs, mp_structures):
    matcher = StructureMatcher()
    for name, cif in crystallm_cifs.items():
        text = postprocess(cif)
        assert "_atom_type_" not in text
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = CifParser.from_str(text).parse_structures(primitive=False)[0]
        assert matcher.fit(structure, mp_structures[name]), name
    bate = postprocess(crystallm_cifs["BaTe"])
    assert bate.startswith("data_Ba4Te4\n_symmetry_space_group_name_H-M Fm-3m\n")
    assert "\n192 '" in bate and "\n193 '" not in bate


def test_postprocess_refuses_what_it_cannot_fix(crystallm_cifs):
    cif = crystallm_cifs["BaTe"]
    with pytest.raises(ValueError, match="no _symmetry_equiv_pos_as_xyz loop"):
        postprocess(cif.split("loop_\n_symmetry_equiv_pos_site_id")[0])
    with pytest.raises(ValueError, match="unknown space group"):
        postprocess(cif.replace("H-M Fm-3m", "H-M Qq"))
