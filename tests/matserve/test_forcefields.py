"""Each force field adapter against its own package's ASE calculator, structure by structure."""

import numpy as np
import pytest

from matserve.forcefields import UnsupportedElementError, load_forcefield, supported_numbers, weights_info
from matserve.structures import System, pack
from tests.crystals import nacl, rattled, si, srtio3


def crystals():
    return [rattled(si(), seed=1), rattled(nacl().repeat((2, 1, 1)), seed=2), rattled(srtio3(), seed=3)]


def assert_batch_matches_calculator(forcefield, calculator, structures, atol=1e-5):
    output = forcefield(pack([System.from_ase(a) for a in structures]))
    start = 0
    for i, atoms in enumerate(structures):
        atoms.calc = calculator
        end = start + len(atoms)
        assert float(output.energy[i]) == pytest.approx(atoms.get_potential_energy(), abs=atol * len(atoms))
        np.testing.assert_allclose(output.forces[start:end].numpy(), atoms.get_forces(), atol=atol)
        np.testing.assert_allclose(output.stress[i].numpy(), atoms.get_stress(voigt=False), atol=atol)
        start = end


def test_chgnet_batch_matches_its_calculator(chgnet):
    from chgnet.model.dynamics import CHGNetCalculator

    assert_batch_matches_calculator(chgnet, CHGNetCalculator(model=chgnet.model), crystals())


def test_sevennet_batch_matches_its_calculator():
    from sevenn.calculator import SevenNetCalculator

    assert_batch_matches_calculator(load_forcefield("sevennet"), SevenNetCalculator("7net-0", device="cpu"), crystals())


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
    assert 1 in supported_numbers("sevennet")


def test_weights_provenance_is_the_shipped_file():
    info = weights_info("chgnet")
    assert info.name == "CHGNet 0.3.0" and info.file.startswith("chgnet_0.3.0") and len(info.sha256) == 64
    assert weights_info("sevennet").file == "checkpoint_sevennet_0.pth"
