"""Each force field adapter against its own package's ASE calculator, structure by structure; the registry."""

import typing

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from matserve.forcefields import (
    FORCEFIELDS,
    REGISTRY,
    UnsupportedElementError,
    load_forcefield,
    supported_numbers,
    weights_info,
)
from matserve.forcefields.boxing import molecule_box
from matserve.settings import Settings
from matserve.structures import System, pack
from tests.crystals import nacl, rattled, si, srtio3

# Batched against each package's calculator, one structure at a time: eV/atom, eV/Å, eV/Å³.
ENERGY_PER_ATOM_TOL = 1e-5
FORCE_TOL = 2e-5  # float32 models: CHGNet one-pass vs its calculator reaches 1e-5 on SrTiO3 here
STRESS_TOL = 1e-5


def crystals():
    return [rattled(si(), seed=1), rattled(nacl().repeat((2, 1, 1)), seed=2), rattled(srtio3(), seed=3)]


def methane():
    atoms = molecule("CH4")
    atoms.rattle(0.05, seed=4)
    return atoms


def boxed(atoms, cutoff):
    """A molecule as its calculator is given one: periodic, in the box the adapter puts it in (float32 models
    round differently at other positions; box independence is tested below)."""
    positions, cell = molecule_box(atoms.positions, cutoff)
    return Atoms(numbers=atoms.numbers, positions=positions, cell=cell, pbc=True)


def assert_batch_matches_calculator(forcefield, calculator, structures, molecules=()):
    """Crystals and molecules in one packed batch, each against ``calculator``; a molecule's stress is zero."""
    systems = [System.from_ase(a) for a in structures]
    systems += [System(m.positions, m.numbers, np.zeros((3, 3)), [False] * 3) for m in molecules]
    output = forcefield(pack(systems))
    start = 0
    for i, atoms in enumerate([*structures, *(boxed(m, forcefield.cutoff) for m in molecules)]):
        atoms.calc = calculator
        end = start + len(atoms)
        assert float(output.energy[i]) == pytest.approx(atoms.get_potential_energy(),
                                                        abs=ENERGY_PER_ATOM_TOL * len(atoms))
        np.testing.assert_allclose(output.forces[start:end].numpy(), atoms.get_forces(), atol=FORCE_TOL)
        if i < len(structures):
            np.testing.assert_allclose(output.stress[i].numpy(), atoms.get_stress(voigt=False), atol=STRESS_TOL)
        else:
            assert output.stress[i].abs().max() == 0
        start = end


# (registry name, MATSERVE_FORCEFIELD_MODAL, sevenn's pretrained name, sevenn's modal)
SEVENNET_CASES = [
    ("sevennet", "", "7net-0", None),
    ("sevennet-l3i5", "", "7net-l3i5", None),
    ("sevennet-mf-0", "", "7net-mf-0", "PBE"),  # empty: the PBE head
    ("sevennet-mf-0", "r2scan", "7net-mf-0", "R2SCAN"),  # any case
]


def test_chgnet_batch_matches_its_calculator(chgnet):
    from chgnet.model.dynamics import CHGNetCalculator

    assert_batch_matches_calculator(chgnet, CHGNetCalculator(model=chgnet.model), crystals(), [methane()])


@pytest.mark.parametrize("name, modal, pretrained, sevenn_modal", SEVENNET_CASES,
                         ids=[f"{c[0]}-{c[3] or 'single'}" for c in SEVENNET_CASES])
def test_sevennet_batch_matches_its_calculator(name, modal, pretrained, sevenn_modal):
    from sevenn.calculator import SevenNetCalculator

    forcefield = load_forcefield(name, modal=modal)
    assert forcefield.name == name and forcefield.modal == (sevenn_modal or "")
    calculator = SevenNetCalculator(pretrained, device="cpu", modal=sevenn_modal)
    assert_batch_matches_calculator(forcefield, calculator, crystals(), [methane()])


def test_molecule_energy_does_not_depend_on_the_box(chgnet):
    h2o = [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]]
    molecule = System(h2o, [8, 1, 1], np.zeros((3, 3)), [False] * 3)
    shifted = System(np.array(h2o) + 7.0, [8, 1, 1], np.zeros((3, 3)), [False] * 3)
    output = chgnet(pack([molecule, shifted]))
    assert float(output.energy[0]) == pytest.approx(float(output.energy[1]), abs=1e-5)
    assert output.stress.abs().max() == 0


def test_unsupported_elements_are_named(chgnet):
    with pytest.raises(UnsupportedElementError, match=r"\[95\]"):
        chgnet(pack([System([[0, 0, 0]], [95], np.eye(3) * 4)]))
    assert 95 not in supported_numbers("chgnet") and 94 in supported_numbers("chgnet")
    for name in ("sevennet", "sevennet-l3i5", "sevennet-mf-0"):
        numbers = supported_numbers(name)
        assert len(numbers) == 89 and {1, 8, 26, 94} <= numbers and 95 not in numbers, name


# --- the registry ----------------------------------------------------------------------------------------


def test_settings_offer_exactly_the_registry():
    assert typing.get_args(Settings.model_fields["forcefield"].annotation) == FORCEFIELDS == tuple(REGISTRY)
    assert {"chgnet", "sevennet", "sevennet-l3i5", "sevennet-mf-0"} <= set(FORCEFIELDS)
    assert Settings().forcefield == "chgnet" and Settings().forcefield_modal == ""


def test_modal_setting_is_checked_against_the_registry():
    assert Settings(forcefield="sevennet-mf-0", forcefield_modal="R2scan").forcefield_modal == "R2scan"
    with pytest.raises(ValueError, match="PBE"):
        Settings(forcefield="sevennet-mf-0", forcefield_modal="hse06")
    with pytest.raises(ValueError, match="single fidelity"):
        Settings(forcefield="sevennet", forcefield_modal="PBE")


def test_registry_modals_are_the_checkpoints():
    from matserve.forcefields.sevennet import sevennet_modals

    for entry in REGISTRY.values():
        pretrained = entry.options.get("pretrained")
        if pretrained:
            assert sorted(entry.modals) == sorted(sevennet_modals(pretrained)), entry.name
    assert REGISTRY["sevennet-mf-0"].modals[0] == "PBE"
    assert REGISTRY["sevennet-mf-0"].resolve_modal("") == "PBE"
    assert REGISTRY["sevennet-mf-0"].resolve_modal("r2scan") == "R2SCAN"


def test_wrong_names_and_modals_fail_before_loading_a_model():
    with pytest.raises(ValueError, match="sevennet-mf-0"):
        load_forcefield("mace")
    with pytest.raises(ValueError, match="single fidelity"):
        load_forcefield("chgnet", modal="PBE")
    with pytest.raises(ValueError, match=r"\['PBE', 'R2SCAN'\]"):
        load_forcefield("sevennet-mf-0", modal="hse06")
    with pytest.raises(ValueError, match="unknown force field"):
        weights_info("lammps")


def test_provenance_and_elements_without_building_a_model(monkeypatch):
    from chgnet.model import CHGNet
    from sevenn.checkpoint import SevenNetCheckpoint

    def refuse(*args, **kwargs):
        raise AssertionError("built a model")

    monkeypatch.setattr(SevenNetCheckpoint, "build_model", refuse)
    monkeypatch.setattr(CHGNet, "load", refuse)
    expected = {
        "chgnet": ("CHGNet 0.3.0", "chgnet_0.3.0"),
        "sevennet": ("SevenNet-0", "checkpoint_sevennet_0.pth"),
        "sevennet-l3i5": ("SevenNet-l3i5", "checkpoint_l3i5.pth"),
        "sevennet-mf-0": ("SevenNet-MF-0 (PBE)", "checkpoint_sevennet_mf_0.pth"),
    }
    assert set(expected) == set(FORCEFIELDS)
    hashes = set()
    for name, (title, file) in expected.items():
        info = weights_info(name)
        assert info.name == title and info.file.startswith(file) and len(info.sha256) == 64, name
        hashes.add(info.sha256)
        assert supported_numbers(name)
    assert len(hashes) == len(expected)
    assert weights_info("sevennet-mf-0", "r2scan").name == "SevenNet-MF-0 (R2SCAN)"
    assert not any(entry.uses_charge_and_spin for entry in REGISTRY.values())
