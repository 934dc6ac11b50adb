"""ALIGNN graphs on crystals whose neighbour shells are known."""

import numpy as np
import pytest
from ase.build import bulk

from matserve.alignn.graph import IsolatedAtomError, build_graph
from matserve.structures import System, isolated_atoms

A_CU = 3.61
A_NACL = 5.64


def per_atom(graph):
    return np.bincount(graph.edge_src.numpy(), minlength=len(graph.numbers))


def test_fcc_copper_has_twelve_neighbours_at_a_over_root_two():
    graph = build_graph(System.from_ase(bulk("Cu", "fcc", a=A_CU)))
    assert per_atom(graph).tolist() == [12]
    np.testing.assert_allclose(graph.bond_lengths.numpy(), A_CU / np.sqrt(2), rtol=1e-6)


def test_rocksalt_keeps_the_whole_second_shell():
    # 6 Cl at a/2, then 12 Na at a/√2: the 12th-nearest distance is in the second shell, ties kept: 18.
    graph = build_graph(System.from_ase(bulk("NaCl", "rocksalt", a=A_NACL)))
    assert per_atom(graph).tolist() == [18, 18]
    lengths = np.sort(np.unique(np.round(graph.bond_lengths.numpy(), 4)))
    np.testing.assert_allclose(lengths, [A_NACL / 2, A_NACL / np.sqrt(2)], rtol=1e-4)
    src, dst = graph.edge_src.numpy(), graph.edge_dst.numpy()
    first_shell = np.isclose(graph.bond_lengths.numpy(), A_NACL / 2, rtol=1e-4)
    assert (src[first_shell] != dst[first_shell]).all()  # nearest neighbours are the other species


def test_skewed_cells_give_the_same_graph_as_the_cubic_one():
    primitive = bulk("Cu", "fcc", a=A_CU)  # rhombohedral, 60° angles
    skewed = primitive.copy()
    # Other vectors of the same lattice (a1, a1 + a2, 2 a1 + a2 + a3: determinant 1), far more skewed.
    skewed.set_cell(np.array([[1, 0, 0], [1, 1, 0], [2, 1, 1]]) @ np.array(primitive.cell), scale_atoms=False)
    cubic = bulk("Cu", "fcc", a=A_CU, cubic=True)
    for atoms in (skewed, cubic):
        graph = build_graph(System.from_ase(atoms))
        assert (per_atom(graph) == 12).all()
        np.testing.assert_allclose(graph.bond_lengths.numpy(), A_CU / np.sqrt(2), rtol=1e-5)


def test_edges_come_in_both_directions():
    graph = build_graph(System.from_ase(bulk("NaCl", "rocksalt", a=A_NACL)))
    forward = {(int(s), int(d), *np.round(v, 4)) for s, d, v in
               zip(graph.edge_src, graph.edge_dst, graph.bond_vectors.numpy())}
    backward = {(d, s, *(-np.array(v))) for s, d, *v in forward}
    assert {(k[0], k[1], *np.round(k[2:], 4)) for k in backward} == forward


def test_bond_angles_of_fcc():
    graph = build_graph(System.from_ase(bulk("Cu", "fcc", a=A_CU)))
    # Each of 12 bonds into an atom pairs with the 12 bonds out of it: 144 angles per atom.
    assert len(graph.angle_cosines) == 12 * 12
    cosines = np.unique(np.round(graph.angle_cosines.numpy(), 4))
    # Angles at an fcc site between neighbour directions: 60°, 90°, 120°, 180° and 0° (back along the bond).
    np.testing.assert_allclose(cosines, [-1.0, -0.5, 0.0, 0.5, 1.0], atol=1e-4)


def test_an_atom_far_from_all_others_is_refused():
    lonely = System([[0, 0, 0], [0.5, 0.5, 0.5]], [1, 1], np.eye(3) * 80.0)
    with pytest.raises(IsolatedAtomError, match="neighbours within"):
        build_graph(lonely)


def test_an_atom_with_nothing_within_the_cutoff_is_named():
    cluster = bulk("Cu", "fcc", a=A_CU, cubic=True) * (2, 2, 2)
    cluster.set_cell(np.eye(3) * 40.0, scale_atoms=False)
    cluster.append("Cu")
    cluster.positions[-1] = [25.0, 25.0, 25.0]
    system = System.from_ase(cluster)
    assert isolated_atoms(system, 8.0) == [32]
    with pytest.raises(IsolatedAtomError, match="atom 32 has no neighbour within 8 Å"):
        build_graph(system)
