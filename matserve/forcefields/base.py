"""The one interface every force field implements: a packed batch in, energies, forces, stresses out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from matserve.contract import UnsupportedElements, WeightsInfo
from matserve.forcefields.registry import forcefield_label
from matserve.structures import Batch

EV_PER_A3_TO_KBAR = 1602.1766208  # 1 eV/Å³ = 160.2 GPa = 1602 kBar


@dataclass
class ForceFieldOutput:
    energy: torch.Tensor  # (B,) eV, total per system
    forces: torch.Tensor  # (N, 3) eV/Å
    stress: torch.Tensor  # (B, 3, 3) eV/Å³, ASE sign: (1/V) dE/dstrain; zero for molecules


class ForceField(ABC):
    """A machine-learned interatomic potential evaluated on a whole batch at once."""

    name: str
    device: torch.device
    supported_numbers: frozenset[int]
    uses_charge_and_spin: bool = False

    @property
    @abstractmethod
    def weights(self) -> WeightsInfo: ...

    @abstractmethod
    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput: ...

    def unsupported_numbers(self, numbers: list[int] | torch.Tensor) -> list[int]:
        values = numbers.tolist() if isinstance(numbers, torch.Tensor) else numbers
        return sorted({int(z) for z in values} - self.supported_numbers)

    def check_elements(self, numbers: list[int] | torch.Tensor) -> None:
        """UnsupportedElements (an InvalidInput) naming this force field for numbers it does not cover."""
        missing = self.unsupported_numbers(numbers)
        if missing:
            raise UnsupportedElements(forcefield_label(self.name), missing)
