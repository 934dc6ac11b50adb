"""The Triton forcefield model's logic, on numpy arrays, without Triton."""

import numpy as np
import pytest

from matserve.contract import InvalidInput, encode_structures
from matserve.forcefield_model import ForceFieldModel
from matserve.structures import System
from tests.crystals import nacl, rattled, si


def packed(*structures, **extra):
    return {**encode_structures([System.from_ase(a) for a in structures]), **extra}


@pytest.fixture(scope="module")
def sevennet_model():
    return ForceFieldModel("sevennet")


def test_sevennet_relaxes_a_batch_through_the_model(sevennet_model):
    structures = [rattled(si(), seed=1), rattled(nacl(), seed=2)]
    outputs = sevennet_model.execute(packed(*structures, FMAX=np.array([0.05]), MAX_STEPS=np.array([200], np.int32)))
    assert outputs["CONVERGED"].tolist() == [True, True]
    assert outputs["FORCES"].shape == (4, 3) and np.linalg.norm(outputs["FORCES"], axis=1).max() <= 0.05
    assert outputs["NSTEPS"].min() > 0
    assert outputs["ENERGY"][0] / 2 == pytest.approx(-5.42, abs=0.1)  # Si in diamond, PBE-like, eV/atom


def test_inconsistent_packing_is_rejected(sevennet_model):
    inputs = packed(si())
    inputs["N_ATOMS"] = np.array([3], np.int32)
    with pytest.raises(InvalidInput, match="N_ATOMS"):
        sevennet_model.execute(inputs)


def test_elements_outside_the_model_are_rejected(sevennet_model):
    inputs = packed(si())
    inputs["NUMBERS"] = np.array([14, 100], np.int32)
    with pytest.raises(InvalidInput, match=r"\[100\]"):
        sevennet_model.execute(inputs)


def test_the_modal_setting_reaches_the_force_field():
    """model.py passes (forcefield, device, forcefield_modal, batch_size) positionally."""
    model = ForceFieldModel("sevennet-mf-0", "cpu", "r2scan", 64)
    assert model.forcefield.modal == "R2SCAN" and model.atom_budget == 64
    assert model.forcefield.weights.name == "SevenNet-MF-0 (R2SCAN)"
