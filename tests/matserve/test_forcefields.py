"""Each force field adapter against its own package's ASE calculator, structure by structure; the registry."""

import typing

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from matserve.contract import UnsupportedElements
from matserve.forcefields import (
    FORCEFIELDS,
    REGISTRY,
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


# --- MACE from a user's model file ------------------------------------------------------------------------

MACE_NUMBERS = [1, 6, 8, 11, 14, 17, 22, 38]  # H, C, O, Na, Si, Cl, Ti, Sr: the crystals and methane below


def small_mace():
    """A small MACE built with mace-torch's own constructors, random weights from a fixed seed."""
    import torch
    from e3nn import o3
    from mace import modules

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        return modules.ScaleShiftMACE(
            r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=2, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=len(MACE_NUMBERS),
            hidden_irreps=o3.Irreps("8x0e+8x1o"), MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.linspace(-3.0, -1.0, len(MACE_NUMBERS)), avg_num_neighbors=10.0,
            atomic_numbers=MACE_NUMBERS, correlation=2, gate=torch.nn.functional.silu,
            atomic_inter_scale=20.0, atomic_inter_shift=0.0)  # forces of order 0.1-1 eV/Å, not ~0
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(scope="module")
def mace_file(tmp_path_factory):
    """The small MACE as MACE-MP releases ship theirs: the whole module, torch.save(model), a .model file."""
    import torch

    path = tmp_path_factory.mktemp("mace") / "small-mace.model"
    torch.save(small_mace(), path)
    return path


@pytest.fixture()
def no_model_setting(monkeypatch):
    monkeypatch.delenv("MATSERVE_FORCEFIELD_MODEL", raising=False)


def test_mace_batch_matches_its_calculator(mace_file, no_model_setting):
    from mace.calculators import MACECalculator

    forcefield = load_forcefield("mace", model=str(mace_file))
    assert forcefield.name == "mace" and forcefield.cutoff == 5.0 and forcefield.dtype.is_floating_point
    assert forcefield.supported_numbers == frozenset(MACE_NUMBERS) == supported_numbers("mace", str(mace_file))
    calculator = MACECalculator(model_paths=str(mace_file), device="cpu", default_dtype="float64")
    structures = crystals()
    structures[2].calc = calculator
    assert np.abs(structures[2].get_forces()).max() > 0.05  # the random model is not trivially flat
    assert_batch_matches_calculator(forcefield, calculator, structures, [methane()])


def test_mace_molecule_is_unboxed_and_box_independent(mace_file, no_model_setting):
    """MACE takes open boundaries itself: a molecule anywhere, as its calculator gets it without a cell."""
    from mace.calculators import MACECalculator

    forcefield = load_forcefield("mace", model=str(mace_file))
    calculator = MACECalculator(model_paths=str(mace_file), device="cpu", default_dtype="float64")
    ch4 = methane()
    far = ch4.positions + 40.0
    output = forcefield(pack([System(p, ch4.numbers, np.zeros((3, 3)), [False] * 3) for p in (ch4.positions, far)]))
    ch4.calc = calculator
    for i in range(2):
        assert float(output.energy[i]) == pytest.approx(ch4.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(output.forces[5 * i:5 * i + 5].numpy(), ch4.get_forces(), atol=1e-10)
    assert output.stress.abs().max() == 0


def test_mace_torchscript_file_and_float32(tmp_path, mace_file, no_model_setting):
    import torch
    from e3nn.util import jit

    scripted = tmp_path / "small-mace-jit.model"
    jit.compile(torch.load(mace_file, weights_only=False)).save(str(scripted))
    single = tmp_path / "small-mace-f32.model"
    torch.save(small_mace().float(), single)  # as MACECalculator(default_dtype="float32") casts
    batch = pack([System.from_ase(a) for a in crystals()])
    reference = load_forcefield("mace", model=str(mace_file))(batch)
    from_script = load_forcefield("mace", model=str(scripted))(batch)
    np.testing.assert_allclose(from_script.energy.numpy(), reference.energy.numpy(), atol=1e-10)
    np.testing.assert_allclose(from_script.forces.numpy(), reference.forces.numpy(), atol=1e-10)
    float32 = load_forcefield("mace", model=str(single))
    assert float32.dtype == torch.float32  # kept as saved
    output = float32(batch)
    assert output.energy.dtype == torch.float64
    np.testing.assert_allclose(output.energy.numpy(), reference.energy.numpy(), atol=1e-3)


def test_mace_needs_a_model_file(tmp_path, mace_file, no_model_setting, monkeypatch):
    with pytest.raises(ValueError, match="MATSERVE_FORCEFIELD_MODEL"):
        load_forcefield("mace")
    with pytest.raises(ValueError, match="MATSERVE_FORCEFIELD_MODEL"):
        weights_info("mace")
    with pytest.raises(ValueError, match="MATSERVE_FORCEFIELD_MODEL"):
        Settings(forcefield="mace")
    with pytest.raises(ValueError, match="no such file"):
        Settings(forcefield="mace", forcefield_model=str(tmp_path / "missing.model"))
    with pytest.raises(ValueError, match="no such MACE model file"):
        load_forcefield("mace", model=str(tmp_path / "missing.model"))
    state_dict = tmp_path / "weights.pt"
    import torch

    torch.save(small_mace().state_dict(), state_dict)
    with pytest.raises(ValueError, match="holds no MACE model"):
        load_forcefield("mace", model=str(state_dict))
    with pytest.raises(ValueError, match="ships its weights"):
        Settings(forcefield="chgnet", forcefield_model=str(mace_file))
    settings = Settings(forcefield="mace", forcefield_model=str(mace_file))
    assert settings.forcefield_model == str(mace_file) and Settings().forcefield_model == ""
    monkeypatch.setenv("MATSERVE_FORCEFIELD_MODEL", str(mace_file))  # what the gateway's name-only calls read
    assert Settings(forcefield="mace").forcefield_model == str(mace_file)
    assert supported_numbers("mace") == frozenset(MACE_NUMBERS)
    assert weights_info("mace").file == "small-mace.model"
    assert weights_info("chgnet").name == "CHGNet 0.3.0"  # the variable is mace's alone


def test_molecule_energy_does_not_depend_on_the_box(chgnet):
    h2o = [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]]
    molecule = System(h2o, [8, 1, 1], np.zeros((3, 3)), [False] * 3)
    shifted = System(np.array(h2o) + 7.0, [8, 1, 1], np.zeros((3, 3)), [False] * 3)
    output = chgnet(pack([molecule, shifted]))
    assert float(output.energy[0]) == pytest.approx(float(output.energy[1]), abs=1e-5)
    assert output.stress.abs().max() == 0


def test_unsupported_elements_are_named(chgnet):
    with pytest.raises(UnsupportedElements, match=r"\[95\]"):
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


def test_several_forcefields_are_served_the_first_the_default():
    settings = Settings(forcefield="chgnet", forcefields="sevennet-l3i5, sevennet-mf-0", forcefield_modal="r2scan")
    assert settings.served_forcefields == ["sevennet-l3i5", "sevennet-mf-0"] and settings.forcefield == "sevennet-l3i5"
    assert [settings.forcefield_triton_model(n) for n in settings.served_forcefields] == \
        ["forcefield", "forcefield-sevennet-mf-0"]
    assert settings.forcefield_options("sevennet-mf-0") == ("r2scan", "")  # the modal goes to the model with heads
    assert settings.forcefield_options("sevennet-l3i5") == ("", "")
    assert Settings().served_forcefields == ["chgnet"]
    with pytest.raises(ValueError, match=r"unknown force fields \['7net'\]"):
        Settings(forcefields="chgnet,7net")
    with pytest.raises(ValueError, match="names a force field twice"):
        Settings(forcefields="chgnet,chgnet")
    with pytest.raises(ValueError, match="MODAL='PBE': none of \\['chgnet', 'sevennet'\\] takes it"):
        Settings(forcefields="chgnet,sevennet", forcefield_modal="PBE")


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
        load_forcefield("nequip")
    with pytest.raises(ValueError, match="single fidelity"):
        load_forcefield("chgnet", modal="PBE")
    with pytest.raises(ValueError, match=r"\['PBE', 'R2SCAN'\]"):
        load_forcefield("sevennet-mf-0", modal="hse06")
    with pytest.raises(ValueError, match="unknown force field"):
        weights_info("lammps")


def test_provenance_and_elements_without_building_a_model(monkeypatch, mace_file):
    from chgnet.model import CHGNet
    from sevenn.checkpoint import SevenNetCheckpoint

    def refuse(*args, **kwargs):
        raise AssertionError("built a model")

    monkeypatch.delenv("MATSERVE_FORCEFIELD_MODEL", raising=False)
    monkeypatch.setattr(SevenNetCheckpoint, "build_model", refuse)
    monkeypatch.setattr(CHGNet, "load", refuse)
    expected = {
        "chgnet": ("CHGNet 0.3.0", "chgnet_0.3.0"),
        "sevennet": ("SevenNet-0", "checkpoint_sevennet_0.pth"),
        "sevennet-l3i5": ("SevenNet-l3i5", "checkpoint_l3i5.pth"),
        "sevennet-mf-0": ("SevenNet-MF-0 (PBE)", "checkpoint_sevennet_mf_0.pth"),
    }
    assert set(expected) | {"mace"} == set(FORCEFIELDS)
    hashes = set()
    for name, (title, file) in expected.items():
        info = weights_info(name)
        assert info.name == title and info.file.startswith(file) and len(info.sha256) == 64, name
        hashes.add(info.sha256)
        assert supported_numbers(name)
    assert len(hashes) == len(expected)
    assert weights_info("sevennet-mf-0", "r2scan").name == "SevenNet-MF-0 (R2SCAN)"
    from matserve.contract import sha256_file

    mace = weights_info("mace", model=str(mace_file))  # name and hash from the user's file
    assert mace.name == "MACE (small-mace.model)" and mace.file == "small-mace.model"
    assert mace.sha256 == sha256_file(mace_file) and mace.sha256 not in hashes
    with pytest.raises(ValueError, match="ships its weights"):
        weights_info("chgnet", model=str(mace_file))
    assert not any(entry.uses_charge_and_spin for entry in REGISTRY.values())
