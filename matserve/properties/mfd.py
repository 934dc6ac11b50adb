"""The ``mfd`` property model as the Triton model runs it: one structure in, Cv/Fvib/Svib at 300 K out."""

from __future__ import annotations

import numpy as np

from matserve.contract import decode_one_structure
from matserve.forcefields import ForceField, load_forcefield
from matserve.forcefields.registry import Dispersion
from matserve.properties.phonons import PhononSettings, vibrational_properties

TEMPERATURE = 300.0


class MfdModel:
    def __init__(self, forcefield: ForceField | None = None, settings: PhononSettings = PhononSettings(),
                 forcefield_name: str = "chgnet", device: str = "cpu", modal: str = "", model: str | None = None,
                 dispersion: Dispersion | None = None):
        self.forcefield = forcefield or load_forcefield(forcefield_name, device=device, modal=modal, model=model,
                                                        dispersion=dispersion)
        self.settings = settings

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        system = decode_one_structure(inputs)
        self.forcefield.check_elements(system.numbers.tolist())
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
