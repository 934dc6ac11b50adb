"""The phonon pipeline on a textbook case: an Einstein solid, whose every mode has ω = √(k/m)."""

import math

import numpy as np
import pytest
import torch

from matserve.contract import WeightsInfo
from matserve.forcefields.base import ForceField, ForceFieldOutput
from matserve.properties.phonons import PhononSettings, supercell_for, vibrational_properties
from matserve.structures import Batch, System

SPACING = 3.0  # Å, simple cubic sites
SPRING = 2.0  # eV/Å²
COPPER_MASS = 63.546  # amu, phonopy's mass for Cu
HBAR_EV_S = 6.582119569e-16
EV_PER_A2_TO_J_PER_M2 = 1.602176634e-19 / 1e-20
AMU_KG = 1.66053906660e-27
KB_EV = 8.617333262e-5


class EinsteinSolid(ForceField):
    """Every atom tied by a spring to its nearest simple-cubic site."""

    name = "einstein"
    device = torch.device("cpu")
    supported_numbers = frozenset(range(1, 119))

    @property
    def weights(self) -> WeightsInfo:
        return WeightsInfo("Einstein solid", "", "")

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        offset = batch.positions - SPACING * torch.round(batch.positions / SPACING)
        energy = torch.zeros(batch.n_systems, dtype=torch.float64).index_add_(
            0, batch.system_idx, 0.5 * SPRING * (offset**2).sum(dim=1))
        return ForceFieldOutput(energy, -SPRING * offset, torch.zeros(batch.n_systems, 3, 3, dtype=torch.float64))


def einstein(temperature: float) -> tuple[float, float, float]:
    """(Cv kB, F meV, S kB) per atom of an Einstein solid."""
    energy = HBAR_EV_S * math.sqrt(SPRING * EV_PER_A2_TO_J_PER_M2 / (COPPER_MASS * AMU_KG))
    x = energy / (KB_EV * temperature)
    cv = 3 * x**2 * math.exp(x) / math.expm1(x) ** 2
    free = 3 * (energy / 2 + KB_EV * temperature * math.log(-math.expm1(-x))) * 1000
    entropy = 3 * (x / math.expm1(x) - math.log(-math.expm1(-x)))
    return cv, free, entropy


@pytest.mark.parametrize("temperature", [50.0, 300.0, 2000.0])
def test_einstein_solid_matches_the_textbook(temperature):
    crystal = System([[0.0, 0.0, 0.0]], [29], np.eye(3) * SPACING)
    settings = PhononSettings(supercell_min_length=6.0)
    result = vibrational_properties(EinsteinSolid(), crystal, temperature, settings, relax_first=False)
    cv, free, entropy = einstein(temperature)
    assert result.heat_capacity == pytest.approx(cv, rel=1e-3)
    assert result.free_energy == pytest.approx(free, rel=1e-3, abs=0.01)
    assert result.entropy == pytest.approx(entropy, rel=1e-3)
    assert result.imaginary_fraction == 0.0


def test_high_temperature_heat_capacity_is_dulong_petit():
    crystal = System([[0.0, 0.0, 0.0]], [29], np.eye(3) * SPACING)
    result = vibrational_properties(EinsteinSolid(), crystal, 5000.0, PhononSettings(supercell_min_length=6.0),
                                    relax_first=False)
    assert result.heat_capacity == pytest.approx(3.0, rel=2e-3)


def test_supercell_reaches_the_minimum_length():
    assert supercell_for(np.diag([3.0, 5.0, 9.0]), 8.0) == (3, 2, 1)
