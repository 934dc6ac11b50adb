"""D3 dispersion on any force field against torch-dftd's own ASE calculator, structure by structure."""

import numpy as np
import pytest
import torch
from ase.build import molecule
from pydantic import ValidationError
from torch_dftd.torch_dftd3_calculator import TorchDFTD3Calculator

from matserve.contract import WeightsInfo
from matserve.forcefields import ForceField, ForceFieldOutput, weights_info
from matserve.forcefields.dispersion import WithDispersion
from matserve.forcefields.registry import D3_DAMPINGS, Dispersion, ForceFieldEntry
from matserve.settings import Settings
from matserve.structures import System, pack
from tests.crystals import nacl, rattled, si

ENERGY_TOL = 1e-6  # eV per structure
FORCE_TOL = 1e-6  # eV/Å
STRESS_TOL = 1e-8  # eV/Å³ (1.6e-5 kBar): strain autograd here, the virial in torch-dftd's calculator
D3 = Dispersion("d3")  # PBE, Becke-Johnson damping, 95 Bohr


class ZeroForceField(ForceField):
    """A stand-in base model that adds nothing, so the wrapper's output is D3 alone."""

    def __init__(self, device: str = "cpu", name: str = "zero", title: str = "Zero"):
        self.name, self.title, self.device = name, title, torch.device(device)
        self.supported_numbers = frozenset(range(1, 119))

    @property
    def weights(self) -> WeightsInfo:
        return WeightsInfo(self.title, "zero.pt", None)

    def __call__(self, batch, compute_stress=True):
        return ForceFieldOutput(energy=torch.zeros(batch.n_systems, dtype=torch.float64),
                                forces=torch.zeros(len(batch.numbers), 3, dtype=torch.float64),
                                stress=torch.zeros(batch.n_systems, 3, 3, dtype=torch.float64))


def ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=5)
    return atoms


def sheared_si():
    """Rattled Si in a sheared cell: non-zero forces and off-diagonal stress."""
    atoms = rattled(si(), amount=0.05, seed=1)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.03, 0.0], [0.0, 1.0, -0.02], [0.01, 0.0, 1.02]]),
                   scale_atoms=True)
    return atoms


def as_system(atoms) -> System:
    if atoms.pbc.any():
        return System.from_ase(atoms)
    return System(atoms.positions, atoms.numbers, np.zeros((3, 3)), [False] * 3)  # a molecule as the APIs carry it


def reference(atoms, dispersion: Dispersion = D3):
    """torch-dftd's ASE calculator on one structure: energy, forces, stress (3, 3) or None for a molecule."""
    atoms = atoms.copy()
    atoms.calc = TorchDFTD3Calculator(damping=dispersion.damping, xc=dispersion.functional,
                                      cutoff=dispersion.cutoff, dtype=torch.float64)
    stress = atoms.get_stress(voigt=False) if atoms.pbc.any() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def assert_matches_reference(structures, dispersion: Dispersion = D3):
    output = WithDispersion(ZeroForceField(), dispersion)(pack([as_system(a) for a in structures]))
    start = 0
    for i, atoms in enumerate(structures):
        energy, forces, stress = reference(atoms, dispersion)
        end = start + len(atoms)
        assert float(output.energy[i]) == pytest.approx(energy, abs=ENERGY_TOL)
        np.testing.assert_allclose(output.forces[start:end].numpy(), forces, atol=FORCE_TOL)
        if stress is None:
            assert torch.count_nonzero(output.stress[i]) == 0
        else:
            np.testing.assert_allclose(output.stress[i].numpy(), stress, atol=STRESS_TOL)
        start = end


def test_molecule_matches_calculator():
    assert_matches_reference([ethanol()])


def test_crystal_matches_calculator():
    crystal = sheared_si()
    assert_matches_reference([crystal])
    assert abs(reference(crystal)[2][0, 1]) > 1e-5  # the shear shows in the stress being compared


@pytest.mark.parametrize("damping", [d for d in D3_DAMPINGS if d != "bj"])
def test_other_dampings_and_functionals_match_calculator(damping):
    assert_matches_reference([ethanol()], Dispersion("d3", functional="pbe0", damping=damping))


def test_batch_equals_one_by_one():
    structures = [sheared_si(), ethanol(), rattled(nacl(), seed=2)]
    forcefield = WithDispersion(ZeroForceField(), D3)
    batched = forcefield(pack([as_system(a) for a in structures]))
    start = 0
    for i, atoms in enumerate(structures):
        alone = forcefield(pack([as_system(atoms)]))
        end = start + len(atoms)
        assert float(batched.energy[i]) == pytest.approx(float(alone.energy[0]), abs=1e-10)
        torch.testing.assert_close(batched.forces[start:end], alone.forces[0:len(atoms)], atol=1e-10, rtol=0)
        torch.testing.assert_close(batched.stress[i], alone.stress[0], atol=1e-12, rtol=0)
        start = end


def test_adds_to_a_real_force_field(chgnet):
    """CHGNet + D3 is CHGNet's own output plus the calculator's D3, energy, forces and stress (a shorter
    cutoff than the default, as a user may set it)."""
    crystal = rattled(nacl(), seed=3)
    dispersion = Dispersion("d3", cutoff=25.0)
    batch = pack([System.from_ase(crystal)])
    base = chgnet(batch)
    forcefield = WithDispersion(chgnet, dispersion)
    combined = forcefield(batch)
    energy, forces, stress = reference(crystal, dispersion)
    assert float(combined.energy[0]) == pytest.approx(float(base.energy[0]) + energy, abs=ENERGY_TOL)
    np.testing.assert_allclose(combined.forces.numpy(), base.forces.numpy() + forces, atol=FORCE_TOL)
    np.testing.assert_allclose(combined.stress[0].numpy(), base.stress[0].numpy() + stress, atol=STRESS_TOL)
    assert forcefield.weights.name == "CHGNet 0.3.0 + D3(BJ)"
    assert forcefield.weights.sha256 == chgnet.weights.sha256


def test_off_by_default(monkeypatch):
    for name in ("MATSERVE_DISPERSION", "MATSERVE_DISPERSION_FUNCTIONAL", "MATSERVE_DISPERSION_DAMPING"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert not settings.dispersion_config.enabled
    fake = ForceFieldEntry("zero", "Zero", "tests.matserve.test_dispersion:ZeroForceField")
    assert type(fake.load(dispersion=settings.dispersion_config)) is ZeroForceField
    assert type(fake.load()) is ZeroForceField  # None reads the (unset) environment
    assert weights_info("chgnet").name == "CHGNet 0.3.0"


def test_setting_wraps_the_loaded_model_and_names_it(monkeypatch):
    fake = ForceFieldEntry("zero", "Zero", "tests.matserve.test_dispersion:ZeroForceField")
    loaded = fake.load(dispersion=Settings(dispersion="d3").dispersion_config)
    assert isinstance(loaded, WithDispersion) and isinstance(loaded.base, ZeroForceField)
    assert loaded.name == "zero" and loaded.weights.name == "Zero + D3(BJ)"
    assert weights_info("sevennet-mf-0", dispersion=Dispersion("d3", damping="zero")).name == \
        "SevenNet-MF-0 (PBE) + D3(0)"
    monkeypatch.setenv("MATSERVE_DISPERSION", "d3")  # what the gateway's /v1/metadata reads
    assert weights_info("sevennet").name == "SevenNet-0 + D3(BJ)"
    assert isinstance(fake.load(), WithDispersion)


def test_settings_validate_functional_and_damping():
    assert Settings(dispersion="d3", dispersion_functional="PBEsol").dispersion_config.functional == "pbesol"
    with pytest.raises(ValidationError, match="MATSERVE_DISPERSION_FUNCTIONAL='nope'"):
        Settings(dispersion_functional="nope")
    with pytest.raises(ValidationError, match="r2scan"):
        Settings(dispersion="d3", dispersion_functional="r2scan", dispersion_damping="zero")
    with pytest.raises(ValidationError):
        Settings(dispersion="d4")
    with pytest.raises(ValidationError):
        Settings(dispersion_cutoff=0)
