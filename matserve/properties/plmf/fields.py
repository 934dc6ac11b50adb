"""The plmf models: which data set, target and transform each one has (shared by training and serving)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FieldSpec:
    """One model: where its data comes from and how its target is transformed."""

    name: str  # model file name: models/<name>.txt.gz
    dataset: str
    target: str
    transform: str  # "none", "log" or "scale" (× 1e5, for thermal expansion in 1/K)
    kind: str = "regression"  # or "classification" (insulator = band gap > 0)
    insulators_only: bool = False
    structure: bool = False  # structure features (Voronoi fragments); else composition features


FIELDS = (
    FieldSpec("egap_type", "mp_band_gap", "band_gap", "none", kind="classification", structure=True),
    FieldSpec("egap", "mp_band_gap", "band_gap", "none", insulators_only=True, structure=True),
    FieldSpec("energy_per_atom", "aflow_energy_atom", "energy_atom", "none"),
    FieldSpec("bulk_modulus", "mp_elasticity", "bulk_modulus", "log", structure=True),
    FieldSpec("shear_modulus", "mp_elasticity", "shear_modulus", "log", structure=True),
    FieldSpec("debye_temperature", "aflow_ael_debye_temperature", "ael_debye_temperature", "log"),
    FieldSpec("thermal_conductivity", "aflow_agl_thermal_conductivity_300K", "agl_thermal_conductivity_300K", "log"),
    FieldSpec("thermal_expansion", "aflow_agl_thermal_expansion_300K", "agl_thermal_expansion_300K", "scale"),
    # Not served (the served moduli come from structures): AFLOW's own AEL moduli from composition,
    # for the Cp check and a like-for-like comparison on plmf's kind of data.
    FieldSpec("aflow_bulk_modulus", "aflow_ael_bulk_modulus_vrh", "ael_bulk_modulus_vrh", "log"),
    FieldSpec("aflow_shear_modulus", "aflow_ael_shear_modulus_vrh", "ael_shear_modulus_vrh", "log"),
)
SERVED = ("egap_type", "egap", "energy_per_atom", "bulk_modulus", "shear_modulus", "debye_temperature",
          "thermal_conductivity", "thermal_expansion")
SPECS = {spec.name: spec for spec in FIELDS}


def forward(transform: str, values: np.ndarray) -> np.ndarray:
    """Target → what the model learns."""
    return {"none": lambda v: v, "log": np.log, "scale": lambda v: v * 1e5}[transform](values)


def inverse(transform: str, values: np.ndarray) -> np.ndarray:
    """What the model predicts → target units."""
    return {"none": lambda v: v, "log": np.exp, "scale": lambda v: v / 1e5}[transform](values)
