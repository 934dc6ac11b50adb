"""The plmf featuriser: Voronoi neighbours on crystals whose neighbours are known, and the feature vector."""

from collections import Counter

import numpy as np
import pytest
from pymatgen.analysis.local_env import IsayevNN
from pymatgen.core import Composition, Element, Lattice, Structure

from matserve.contract import UnsupportedElements
from matserve.properties.plmf.elements import PROPERTY_NAMES, property_table, unsupported, valence_counts
from matserve.properties.plmf.features import (
    composition_feature_names,
    composition_features,
    structure_feature_names,
    structure_features,
)
from matserve.properties.plmf.graph import plmf_neighbours


def fcc_cu() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])


def bcc(element: str, a: float) -> Structure:
    return Structure(Lattice.cubic(a), [element, element], [[0, 0, 0], [0.5, 0.5, 0.5]])


def rocksalt_nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perovskite_srtio3() -> Structure:
    return Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def counts(structure: Structure) -> list[int]:
    return [len(shell) for shell in plmf_neighbours(structure)]


def test_fcc_copper_has_twelve_neighbours_in_any_cell():
    assert counts(fcc_cu()) == [12] * 4
    assert counts(fcc_cu().get_primitive_structure()) == [12]


def test_bcc_iron_has_eight_plus_six_neighbours():
    shell = plmf_neighbours(bcc("Fe", 2.87))[0]
    distances = sorted(round(n.distance, 3) for n in shell)
    assert distances == [2.485] * 8 + [2.87] * 6


def test_rocksalt_atoms_have_six_neighbours_of_the_other_element():
    structure = rocksalt_nacl()
    for i, shell in enumerate(plmf_neighbours(structure)):
        assert len(shell) == 6
        other = "Cl" if structure[i].specie.symbol == "Na" else "Na"
        assert {structure[n.index].specie.symbol for n in shell} == {other}
        assert all(n.distance == pytest.approx(2.82) for n in shell)


def test_the_covalent_radius_rule_cuts_long_faces():
    # CsCl has the bcc Voronoi cells (14 faces each). Cs–Cs at 4.12 Å is within 2 × 2.44 + 0.25 Å and
    # stays; Cl–Cl at 4.12 Å is beyond 2 × 1.02 + 0.25 Å and goes, so Cl keeps only its 8 Cs.
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert counts(cscl) == [14, 8]


def test_perovskite_shells():
    # Sr has 12 O at 2.76 Å; Ti (3.38 Å) would pass the distance rule but shares no Voronoi face with Sr.
    structure = perovskite_srtio3()
    shells = plmf_neighbours(structure)
    species = [Counter(structure[n.index].specie.symbol for n in shell) for shell in shells]
    assert species[0] == {"O": 12}
    assert species[1] == {"O": 6}


def test_an_atom_the_distance_rule_leaves_alone_keeps_its_large_faces():
    # bcc K: nearest neighbours at 4.53 Å, beyond 2 × 2.03 + 0.25 Å; the fallback keeps the 14 faces.
    assert counts(bcc("K", 5.23)) == [14, 14]


def test_same_neighbours_as_pymatgen_isayev_nn():
    structure = perovskite_srtio3()
    structure.perturb(0.1, min_distance=0.05)  # a low-symmetry cell
    structure = structure.make_supercell([2, 1, 1], in_place=False)
    ours = plmf_neighbours(structure)
    reference = IsayevNN(cutoff=8.0, compute_adj_neighbors=False).get_all_nn_info(structure)
    for i, shell in enumerate(reference):
        expected = Counter((n["site_index"], round(float(np.linalg.norm(n["site"].coords - structure[i].coords)), 4))
                           for n in shell)
        assert Counter((n.index, round(n.distance, 4)) for n in ours[i]) == expected


def test_element_table_is_complete():
    table = property_table()
    assert table.shape == (97, len(PROPERTY_NAMES))
    assert not np.isnan(table[1:]).any()
    assert valence_counts(Element("Cu")) == (1, 0, 10, 0)
    assert valence_counts(Element("Pb")) == (2, 2, 10, 14)
    assert unsupported([1, 8, 96, 97, 0]) == [0, 97]


def test_feature_vector_has_its_names_and_does_not_depend_on_the_cell_chosen():
    conventional = structure_features(rocksalt_nacl())
    primitive = structure_features(rocksalt_nacl().get_primitive_structure())
    assert len(conventional) == len(structure_feature_names())
    assert np.isfinite(conventional).all()
    np.testing.assert_allclose(conventional, primitive, rtol=1e-9, atol=1e-9)


def test_structure_features_begin_with_the_composition_features():
    features = structure_features(perovskite_srtio3())
    np.testing.assert_allclose(features[: len(composition_feature_names())], composition_features("SrTiO3"))
    np.testing.assert_allclose(composition_features("Sr2Ti2O6"), composition_features(Composition("SrTiO3")))


def test_fragment_features_follow_the_graph():
    names = structure_feature_names()
    copper = dict(zip(names, structure_features(fcc_cu())))
    assert copper["electronegativity.edge_mean_diff"] == 0.0  # one element: no differences anywhere
    assert copper["coordination_mean"] == 12.0 and copper["homonuclear_bond_fraction"] == 1.0
    salt = dict(zip(names, structure_features(rocksalt_nacl())))
    chi = 3.16 - 0.93  # Pauling electronegativities of Cl and Na
    assert salt["electronegativity.edge_mean_diff"] == pytest.approx(chi)
    assert salt["electronegativity.walk2_mean_diff"] == pytest.approx(0.0)  # two bonds: back to the same element
    assert salt["electronegativity.walk3_mean_diff"] == pytest.approx(chi)
    assert salt["homonuclear_bond_fraction"] == 0.0


def test_unsupported_elements_are_refused():
    with pytest.raises(UnsupportedElements):
        composition_features("Cf2O3")
    with pytest.raises(UnsupportedElements):
        structure_features(Structure(Lattice.cubic(3.0), ["Cf"], [[0, 0, 0]]))
