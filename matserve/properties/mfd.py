"""The ``mfd`` property model as the Triton model runs it: one structure in, Cv/Fvib/Svib at 300 K out."""

from __future__ import annotations

import numpy as np

from matserve.forcefields import ForceField, load_forcefield
from matserve.properties.phonons import PhononSettings, vibrational_properties
from matserve.structures import System

TEMPERATURE = 300.0


class InvalidStructureError(ValueError):
    pass


class MfdModel:
    def __init__(self, forcefield: ForceField | None = None, settings: PhononSettings = PhononSettings(),
                 forcefield_name: str = "chgnet", device: str = "cpu", modal: str = "", model: str | None = None):
        self.forcefield = forcefield or load_forcefield(forcefield_name, device=device, modal=modal, model=model)
        self.settings = settings

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        system = System(inputs["POSITIONS"].reshape(-1, 3), inputs["NUMBERS"].reshape(-1), inputs["CELL"].reshape(3, 3))
        missing = self.forcefield.unsupported_numbers(system.numbers.tolist())
        if missing:
            raise InvalidStructureError(f"force field {self.forcefield.name!r} does not support atomic numbers {missing}")
        result = vibrational_properties(self.forcefield, system, TEMPERATURE, self.settings)
        supercell = "x".join(str(n) for n in result.supercell)
        description = (
            f"harmonic phonons at {TEMPERATURE:.0f} K from {self.forcefield.name} forces after relaxation "
            f"({supercell} supercell, {self.settings.displacement} Å displacements); per atom: "
            "ml_Cv and ml_Svib in kB, ml_Fvib in meV"
        )
        if result.imaginary_fraction > 0:
            description += f"; {100 * result.imaginary_fraction:.1f} % of mesh modes imaginary (left out)"
        return {
            "ML_CV": np.array([result.heat_capacity]),
            "ML_FVIB": np.array([result.free_energy]),
            "ML_SVIB": np.array([result.entropy]),
            "DESCRIPTION": np.array([description.encode()], dtype=object),
        }
