"""The ``plmf`` property model as the Triton model runs it: one structure in, the AFLOW-ML plmf fields out.

Band gap, gap type and the AEL bulk and shear moduli come from the structure (Voronoi
fragment features); energy per atom, Debye temperature, thermal conductivity and thermal
expansion from the composition alone (the AFLOW data that carry them have no structures).
Cv at 300 K follows from the Debye temperature through the Debye model and Cp from Cv
through Cp − Cv = α²BVT (α the predicted volumetric expansion, B the predicted bulk
modulus, V the structure's volume per atom), as AFLOW's AGL method derives them.

Units are AFLOW-ML's: eV (ml_egap), eV/atom (ml_energy_per_atom), GPa (moduli), K
(ml_agl_debye), kB per cell (ml_agl_heat_capacity_Cp_300K, _Cv_300K) and per atom
(..._per_atom), W/(m·K) (ml_agl_thermal_conductivity_300K), 1/K (ml_agl_thermal_expansion_300K).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
from pymatgen.core import Structure

from matserve.contract import InvalidInput, WeightsInfo, check_elements, decode_one_structure, sha256_file
from matserve.properties.debye import cp_from_cv, debye_cv
from matserve.properties.plmf.elements import supported_numbers
from matserve.properties.plmf.features import composition_features, structure_features
from matserve.properties.plmf.fields import SERVED, SPECS, inverse

MODELS = Path(__file__).resolve().parent / "models"
TEMPERATURE = 300.0

DESCRIPTION = (
    "plmf-style LightGBM models (Voronoi property-labelled fragments, after Isayev et al. 2017) trained by matserve: "
    "ml_egap_type, ml_egap (MP PBE) and ml_ael_bulk/shear_modulus_vrh (MP elasticity) from the structure; "
    "ml_energy_per_atom, ml_agl_debye (trained on AFLOW's AEL Debye temperature), "
    "ml_agl_thermal_conductivity_300K and ml_agl_thermal_expansion_300K from the composition only (AFLOW data); "
    "heat capacities at 300 K from ml_agl_debye through the Debye model, Cp = Cv + α²BVT; "
    "units: eV, eV/atom, GPa, K, kB per cell and per atom, W/(m·K), 1/K"
)


@dataclass(frozen=True)
class PlmfPrediction:
    egap_type: str  # "metal" or "insulator" (AFLOW's Egap_type without direct/indirect)
    egap: float
    energy_per_atom: float
    bulk_modulus: float
    shear_modulus: float
    debye_temperature: float
    cv_per_atom: float
    cp_per_atom: float
    cv_cell: float
    cp_cell: float
    thermal_conductivity: float
    thermal_expansion: float


def weights_info(models_dir: Path = MODELS) -> WeightsInfo:
    """The committed LightGBM models, one checksum over their files' names and checksums."""
    files = sorted(models_dir.glob("*.txt.gz"))
    manifest = "".join(f"{path.name} {sha256_file(path)}\n" for path in files)
    return WeightsInfo(f"embedded plmf/models ({len(files)} LightGBM models)", "models/*.txt.gz",
                       hashlib.sha256(manifest.encode()).hexdigest())


def load_booster(path: Path) -> lgb.Booster:
    with gzip.open(path, "rt") as handle:
        return lgb.Booster(model_str=handle.read())


class PlmfModel:
    def __init__(self, models_dir: Path = MODELS):
        missing = [name for name in SERVED if not (models_dir / f"{name}.txt.gz").exists()]
        if missing:
            raise FileNotFoundError(f"plmf model files missing in {models_dir}: {missing}")
        self.boosters = {name: load_booster(models_dir / f"{name}.txt.gz") for name in SERVED}

    def _value(self, name: str, features: np.ndarray) -> float:
        raw = float(self.boosters[name].predict(features[None, :], num_threads=1)[0])
        spec = SPECS[name]
        return raw if spec.kind == "classification" else float(inverse(spec.transform, np.array(raw)))

    def predict(self, structure: Structure) -> PlmfPrediction:
        check_elements("plmf", structure.atomic_numbers, supported_numbers())  # no elemental reference properties
        try:
            by_structure = structure_features(structure)
        except ValueError as error:  # e.g. an unbounded Voronoi cell
            raise InvalidInput(f"plmf could not build the Voronoi graph: {error}") from error
        by_composition = composition_features(structure.composition)
        insulator = self._value("egap_type", by_structure) >= 0.5
        bulk = self._value("bulk_modulus", by_structure)
        debye = self._value("debye_temperature", by_composition)
        expansion = self._value("thermal_expansion", by_composition)
        cv = debye_cv(debye, TEMPERATURE)
        cp = cp_from_cv(cv, expansion, bulk, structure.volume / len(structure), TEMPERATURE)
        return PlmfPrediction(
            egap_type="insulator" if insulator else "metal",
            egap=max(self._value("egap", by_structure), 0.0) if insulator else 0.0,
            energy_per_atom=self._value("energy_per_atom", by_composition),
            bulk_modulus=bulk,
            shear_modulus=self._value("shear_modulus", by_structure),
            debye_temperature=debye,
            cv_per_atom=cv,
            cp_per_atom=cp,
            cv_cell=cv * len(structure),
            cp_cell=cp * len(structure),
            thermal_conductivity=self._value("thermal_conductivity", by_composition),
            thermal_expansion=expansion,
        )

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One packed structure in (matserve.contract), Triton tensors out (OUTPUTS)."""
        result = self.predict(decode_one_structure(inputs).to_pymatgen())
        numbers = {name: np.array([getattr(result, attr)], dtype=np.float64) for name, attr in NUMERIC_OUTPUTS.items()}
        return {
            "ML_EGAP_TYPE": np.array([result.egap_type.encode()], dtype=object),
            **numbers,
            "DESCRIPTION": np.array([DESCRIPTION.encode()], dtype=object),
        }


NUMERIC_OUTPUTS = {  # Triton output -> PlmfPrediction attribute
    "ML_EGAP": "egap",
    "ML_ENERGY_PER_ATOM": "energy_per_atom",
    "ML_BULK_MODULUS": "bulk_modulus",
    "ML_SHEAR_MODULUS": "shear_modulus",
    "ML_DEBYE": "debye_temperature",
    "ML_CP": "cp_cell",
    "ML_CV": "cv_cell",
    "ML_CP_PER_ATOM": "cp_per_atom",
    "ML_CV_PER_ATOM": "cv_per_atom",
    "ML_THERMAL_CONDUCTIVITY": "thermal_conductivity",
    "ML_THERMAL_EXPANSION": "thermal_expansion",
}
OUTPUTS = ("ML_EGAP_TYPE", *NUMERIC_OUTPUTS, "DESCRIPTION")
