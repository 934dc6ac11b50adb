"""The batched FIRE / FIRE2 relaxer against ASE's FIRE and FIRE2 with the same CHGNet model."""

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from ase.optimize.fire2 import FIRE2
from ase.stress import full_3x3_to_voigt_6_stress
from chgnet.model.dynamics import CHGNetCalculator

from matserve.forcefields import EV_PER_A3_TO_KBAR
from matserve.relax import RelaxOptions, relax
from matserve.structures import System, pack
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


class MatserveCalculator(Calculator):
    """ASE calculator over matserve's own CHGNet adapter, so ASE's optimisers see exactly the forces
    ours do (CHGNetCalculator agrees only to ~1e-5, see above, too loose to compare trajectories);
    records the geometry of every evaluation."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, forcefield):
        super().__init__()
        self.forcefield = forcefield
        self.geometries: list[tuple[np.ndarray, np.ndarray]] = []

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.geometries.append((self.atoms.positions.copy(), np.array(self.atoms.cell)))
        out = self.forcefield(pack([System.from_ase(self.atoms)]))
        self.results = {"energy": float(out.energy[0]), "forces": out.forces.numpy().copy(),
                        "stress": full_3x3_to_voigt_6_stress(out.stress[0].numpy())}


class RecordingForceField:
    """Our force field, recording the geometry of every (single-structure) evaluation."""

    def __init__(self, forcefield):
        self.forcefield = forcefield
        self.geometries: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, batch, compute_stress=True):
        self.geometries.append((batch.positions.numpy().copy(), batch.cells[0].numpy().copy()))
        return self.forcefield(batch, compute_stress)


def ase_run(atoms, forcefield, optimizer, cellopt=False, fmax=FMAX, steps=500):
    """ASE's ``optimizer`` (FrechetCellFilter with cellopt) on matserve's CHGNet: (calculator, optimizer)."""
    atoms = atoms.copy()
    atoms.calc = calculator = MatserveCalculator(forcefield)
    run = optimizer(FrechetCellFilter(atoms) if cellopt else atoms, logfile=None)
    run.run(fmax=fmax, steps=steps)
    return calculator, run


def test_fire2_reaches_ase_fire2_energy_and_force_tolerance(chgnet):
    structures = crystals()[:3] + crystals()[4:]  # Cu2 is done in a few steps either way
    results = relax(chgnet, [System.from_ase(a) for a in structures],
                    RelaxOptions(fmax=FMAX, max_steps=500, optimizer="fire2"))
    for atoms, result in zip(structures, results):
        calculator, _ = ase_run(atoms, chgnet, FIRE2)
        assert result.converged
        assert np.linalg.norm(result.forces, axis=1).max() <= FMAX
        reference = calculator.results["energy"] / len(atoms)
        assert result.energy / len(atoms) == pytest.approx(reference, abs=2e-3), atoms.get_chemical_formula()


@pytest.mark.parametrize("optimizer", ["fire", "fire2"])
def test_frechet_cell_relaxation_reaches_ase_energy_and_pressure_tolerance(chgnet, optimizer):
    atoms = rattled(si(), amount=0.02, seed=3, strain=0.03)
    options = RelaxOptions(fmax=FMAX, pressure_tol_kbar=0.5, cellopt=True, max_steps=500, optimizer=optimizer,
                           cell_filter="frechet")
    (result,) = relax(chgnet, [System.from_ase(atoms)], options)
    assert result.converged
    assert np.linalg.norm(result.forces, axis=1).max() <= FMAX
    assert np.abs(result.stress).max() * EV_PER_A3_TO_KBAR <= 0.5
    assert abs(np.linalg.det(result.system.cell)) < abs(np.linalg.det(atoms.cell))  # the strained cell shrank
    calculator, _ = ase_run(atoms, chgnet, FIRE, cellopt=True)
    assert result.energy / len(atoms) == pytest.approx(calculator.results["energy"] / len(atoms), abs=2e-3)


@pytest.mark.parametrize(("optimizer", "cellopt", "evaluations"), [
    ("fire2", False, None),  # the whole run, through an uphill step and its half step back
    ("fire2", True, 25),
    ("fire", True, 25),
])
def test_trajectory_is_ases(chgnet, optimizer, cellopt, evaluations):
    """Every geometry we evaluate is the one ASE's FIRE2 / FIRE (with FrechetCellFilter) evaluates,
    on the same forces. Later cell steps drift apart at ~1e-7 Å: ASE recovers the reference
    positions and the cell's log from the current geometry every step, we keep them, and the
    float32 model magnifies the rounding."""
    atoms = rattled(si().repeat((2, 1, 1)), seed=1, strain=0.03 if cellopt else 0.0)
    steps = 500 if evaluations is None else evaluations
    calculator, run = ase_run(atoms, chgnet, {"fire": FIRE, "fire2": FIRE2}[optimizer], cellopt=cellopt, steps=steps)
    ours = RecordingForceField(chgnet)
    options = RelaxOptions(fmax=FMAX, pressure_tol_kbar=0.0 if evaluations else 0.5, cellopt=cellopt,
                           max_steps=steps, optimizer=optimizer, cell_filter="frechet")
    (result,) = relax(ours, [System.from_ase(atoms)], options)
    if optimizer == "fire2":
        assert len(calculator.geometries) > run.nsteps + 1  # ASE stepped back at least once
    if evaluations is None:
        assert result.converged
        assert len(ours.geometries) == len(calculator.geometries)
    n = evaluations or len(calculator.geometries)
    assert len(ours.geometries) >= n and len(calculator.geometries) >= n
    for (positions, cell), (their_positions, their_cell) in zip(ours.geometries[:n], calculator.geometries[:n]):
        np.testing.assert_allclose(positions, their_positions, rtol=0, atol=1e-6)
        np.testing.assert_allclose(cell, their_cell, rtol=0, atol=1e-6)


def test_mixed_batch_equals_single_runs(chgnet):
    """One packed batch of FIRE, FIRE2 and Frechet-cell structures: each as if relaxed alone
    (small crystals: the float32 model's batched sums differ in the last bit, < 1e-6 eV below 16 eV)."""
    structures = [rattled(nacl(), seed=2), rattled(si(), seed=4), rattled(cu(), seed=3, strain=0.03),
                  rattled(mgo(), seed=3, strain=-0.03)]
    options = [RelaxOptions(fmax=FMAX, max_steps=300),
               RelaxOptions(fmax=FMAX, max_steps=300, optimizer="fire2"),
               RelaxOptions(fmax=FMAX, max_steps=300, cellopt=True, cell_filter="frechet"),
               RelaxOptions(fmax=FMAX, max_steps=300, cellopt=True, cell_filter="frechet", optimizer="fire2")]
    systems = [System.from_ase(a) for a in structures]
    together = relax(chgnet, systems, options)
    for system, option, mixed in zip(systems, options, together):
        (alone,) = relax(chgnet, [system], option)
        assert mixed.converged and alone.converged
        assert mixed.n_steps == alone.n_steps
        assert mixed.energy == pytest.approx(alone.energy, abs=1e-6)
        np.testing.assert_allclose(mixed.system.positions, alone.system.positions, rtol=0, atol=2e-5)
        np.testing.assert_allclose(mixed.system.cell, alone.system.cell, rtol=0, atol=2e-5)


def test_unknown_optimizer_is_refused(chgnet):
    with pytest.raises(ValueError, match="optimizer"):
        relax(chgnet, [System.from_ase(si())], RelaxOptions(optimizer="bfgs"))
