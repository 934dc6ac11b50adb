"""The batched FIRE relaxer against ASE's FIRE with the same CHGNet model."""

import numpy as np
import pytest
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from chgnet.model.dynamics import CHGNetCalculator

from matserve.forcefields import EV_PER_A3_TO_KBAR
from matserve.relax import RelaxOptions, relax
from matserve.structures import System
from tests.crystals import cu, mgo, nacl, rattled, si, srtio3

FMAX = 0.02


def ase_relax(atoms, model, fmax=FMAX, cellopt=False, steps=500):
    atoms = atoms.copy()
    atoms.calc = CHGNetCalculator(model=model)
    optimizer = FIRE(FrechetCellFilter(atoms) if cellopt else atoms, logfile=None)
    optimizer.run(fmax=fmax, steps=steps)
    return atoms.get_potential_energy() / len(atoms), optimizer.nsteps


def crystals():
    return [rattled(si().repeat((2, 1, 1)), seed=1), rattled(nacl(), seed=2), rattled(mgo(), seed=3),
            rattled(cu().repeat((2, 1, 1)), seed=4), rattled(srtio3(), seed=5)]


def test_reaches_ase_energy_and_force_tolerance(chgnet):
    structures = crystals()
    results = relax(chgnet, [System.from_ase(a) for a in structures], RelaxOptions(fmax=FMAX, max_steps=500))
    for atoms, result in zip(structures, results):
        reference, _ = ase_relax(atoms, chgnet.model)
        assert result.converged
        assert np.linalg.norm(result.forces, axis=1).max() <= FMAX
        assert result.energy / len(atoms) == pytest.approx(reference, abs=2e-3), atoms.get_chemical_formula()


def test_masked_atoms_do_not_move(chgnet):
    atoms = rattled(nacl().repeat((2, 1, 1)), amount=0.1, seed=7)
    mask = np.array([False, True, True, False])
    system = System.from_ase(atoms)
    system.active_mask = mask
    (result,) = relax(chgnet, [system], RelaxOptions(fmax=0.05, max_steps=200))
    np.testing.assert_array_equal(result.system.positions[~mask], atoms.positions[~mask])
    assert np.abs(result.system.positions[mask] - atoms.positions[mask]).max() > 1e-3
    assert np.linalg.norm(result.forces[mask], axis=1).max() <= 0.05


def test_cell_relaxation_reaches_pressure_tolerance(chgnet):
    atoms = rattled(si(), amount=0.02, seed=3, strain=0.03)
    options = RelaxOptions(fmax=FMAX, pressure_tol_kbar=0.5, cellopt=True, max_steps=500)
    (result,) = relax(chgnet, [System.from_ase(atoms)], options)
    assert result.converged
    assert np.abs(result.stress).max() * EV_PER_A3_TO_KBAR <= 0.5
    assert abs(np.linalg.det(result.system.cell)) < abs(np.linalg.det(atoms.cell))  # the strained cell shrank
    reference, _ = ase_relax(atoms, chgnet.model, cellopt=True)
    assert result.energy / len(atoms) == pytest.approx(reference, abs=2e-3)


def test_fractional_coordinates_follow_the_cell(chgnet):
    atoms = si()  # perfect: no force, only stress
    atoms.set_cell(atoms.cell * 1.03, scale_atoms=True)
    (result,) = relax(chgnet, [System.from_ase(atoms)], RelaxOptions(fmax=FMAX, cellopt=True, max_steps=300))
    fractional = np.linalg.solve(result.system.cell.T, result.system.positions.T).T
    np.testing.assert_allclose(fractional, atoms.get_scaled_positions(), atol=1e-6)


def test_batch_of_twenty_equals_twenty_single_runs(chgnet):
    pool = [si(), nacl(), mgo(), cu().repeat((2, 1, 1))]
    structures = [System.from_ase(rattled(pool[i % 4], seed=i)) for i in range(20)]
    options = RelaxOptions(fmax=0.05, max_steps=300)
    batched = relax(chgnet, structures, options, atom_budget=24)  # forces in-flight admission
    for system, together in zip(structures, batched):
        (alone,) = relax(chgnet, [system], options)
        assert together.converged and alone.converged
        assert together.energy == pytest.approx(alone.energy, abs=1e-4 * system.n_atoms)
        assert abs(together.n_steps - alone.n_steps) <= 2
        np.testing.assert_allclose(together.system.positions, alone.system.positions, atol=2e-3)


def test_zero_steps_is_a_single_point(chgnet):
    atoms = rattled(si(), seed=11)
    (result,) = relax(chgnet, [System.from_ase(atoms)], RelaxOptions(max_steps=0))
    assert result.n_steps == 0
    np.testing.assert_array_equal(result.system.positions, atoms.positions)
    atoms.calc = CHGNetCalculator(model=chgnet.model)
    assert result.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(result.forces, atoms.get_forces(), atol=1e-5)


def test_a_structure_that_runs_out_of_steps_is_not_converged(chgnet):
    (result,) = relax(chgnet, [System.from_ase(rattled(nacl(), amount=0.2, seed=5))], RelaxOptions(fmax=1e-6, max_steps=3))
    assert not result.converged
    assert result.n_steps == 3


def test_molecule_relaxes_without_a_cell(chgnet):
    h2 = System([[0, 0, 0], [0, 0, 1.0]], [1, 1], np.zeros((3, 3)), [False] * 3)
    (result,) = relax(chgnet, [h2], RelaxOptions(fmax=0.01, max_steps=200))
    assert result.converged
    assert np.linalg.norm(result.system.positions[1] - result.system.positions[0]) == pytest.approx(0.754, abs=0.02)
    np.testing.assert_array_equal(result.system.cell, np.zeros((3, 3)))
