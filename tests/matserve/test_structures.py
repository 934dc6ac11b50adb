import numpy as np
import pytest

from matserve.structures import System, minimum_distance, pack, unpack
from tests.crystals import nacl, si


def test_pack_concatenates_atoms_and_indexes_systems():
    systems = [System.from_ase(si()), System.from_ase(nacl().repeat((2, 1, 1)))]
    batch = pack(systems)
    assert batch.positions.shape == (6, 3)
    assert batch.n_atoms.tolist() == [2, 4]
    assert batch.system_idx.tolist() == [0, 0, 1, 1, 1, 1]
    assert batch.offsets == [0, 2, 6]
    back = unpack(batch)
    for original, restored in zip(systems, back):
        np.testing.assert_allclose(restored.positions, original.positions)
        np.testing.assert_array_equal(restored.numbers, original.numbers)
        np.testing.assert_allclose(restored.cell, original.cell)


def test_minimum_distance_sees_periodic_images():
    # One atom per cell: its nearest neighbour is its own image, one lattice constant away.
    system = System([[0, 0, 0]], [29], np.eye(3) * 2.5)
    assert minimum_distance(system) == pytest.approx(2.5)


def test_minimum_distance_of_si_is_the_bond_length():
    assert minimum_distance(System.from_ase(si())) == pytest.approx(5.43 * np.sqrt(3) / 4, rel=1e-6)


def test_minimum_distance_of_a_molecule_ignores_the_cell():
    h2 = System([[0, 0, 0], [0, 0, 0.74]], [1, 1], np.zeros((3, 3)), [False] * 3)
    assert h2.is_molecule
    assert minimum_distance(h2) == pytest.approx(0.74)


def test_pymatgen_round_trip_keeps_geometry():
    system = System.from_ase(nacl())
    again = System.from_pymatgen(system.to_pymatgen())
    np.testing.assert_allclose(again.positions, system.positions, atol=1e-10)
    np.testing.assert_allclose(again.cell, system.cell)
