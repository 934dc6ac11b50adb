"""Elemental reference properties that label the vertices of the plmf graph.

Every property comes from pymatgen's element data (``pymatgen.core.Element``) or, for the
covalent radius, from the Cordero et al. (2008) table that pymatgen ships
(``CovalentRadius.radius``), which the plmf neighbour rule also uses. Valence-electron
counts per orbital type are counted from pymatgen's electronic structure, outside the
noble-gas core. The few gaps in pymatgen's data (for example no Pauling electronegativity
for He, Ne, Ar) are filled with the property's median over the supported elements.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Element

MAX_Z = 96  # Cm: the last element with a Cordero covalent radius

PROPERTY_NAMES: tuple[str, ...] = (
    "atomic_number",
    "mendeleev_number",
    "atomic_mass",
    "group",
    "period",
    "electronegativity",
    "covalent_radius",
    "atomic_radius",
    "ionic_radius",
    "ionization_energy",
    "electron_affinity",
    "melting_point",
    "boiling_point",
    "molar_volume",
    "thermal_conductivity",
    "valence_s",
    "valence_p",
    "valence_d",
    "valence_f",
    "valence_total",
)


def valence_counts(element: Element) -> tuple[int, int, int, int]:
    """Electrons in s, p, d and f orbitals outside the noble-gas core, e.g. Cu [Ar].3d10.4s1 → (1, 0, 10, 0)."""
    counts = {"s": 0, "p": 0, "d": 0, "f": 0}
    for part in element.electronic_structure.split("."):
        if part.startswith("["):
            continue
        counts[part[1]] += int(part[2:])
    return counts["s"], counts["p"], counts["d"], counts["f"]


def _raw(element: Element, name: str) -> float:
    """One property of one element as a float, NaN where pymatgen has no value."""
    simple = {
        "atomic_number": "Z", "mendeleev_number": "mendeleev_no", "atomic_mass": "atomic_mass",
        "group": "group", "period": "row", "electronegativity": "X", "atomic_radius": "atomic_radius",
        "ionic_radius": "average_ionic_radius", "ionization_energy": "ionization_energy",
        "electron_affinity": "electron_affinity", "melting_point": "melting_point",
        "boiling_point": "boiling_point", "molar_volume": "molar_volume",
        "thermal_conductivity": "thermal_conductivity",
    }
    if name in simple:
        value = getattr(element, simple[name])
        return math.nan if value is None else float(value)
    if name == "covalent_radius":
        return float(CovalentRadius.radius[element.symbol])
    s, p, d, f = valence_counts(element)
    return float({"valence_s": s, "valence_p": p, "valence_d": d, "valence_f": f, "valence_total": s + p + d + f}[name])


@lru_cache(maxsize=1)
def property_table() -> np.ndarray:
    """(MAX_Z + 1, n_properties) float array; row Z holds element Z (row 0 is unused, NaN)."""
    table = np.full((MAX_Z + 1, len(PROPERTY_NAMES)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for missing electronegativities
        for z in range(1, MAX_Z + 1):
            element = Element.from_Z(z)
            table[z] = [_raw(element, name) for name in PROPERTY_NAMES]
    medians = np.nanmedian(table[1:], axis=0)
    rows, cols = np.nonzero(np.isnan(table[1:]))
    table[rows + 1, cols] = medians[cols]
    table[0] = np.nan
    return table


def covalent_radii() -> np.ndarray:
    """Cordero covalent radius (Å) indexed by atomic number."""
    return property_table()[:, PROPERTY_NAMES.index("covalent_radius")]


def supported_numbers() -> frozenset[int]:
    """The atomic numbers with reference properties here: H to Cm."""
    return frozenset(range(1, MAX_Z + 1))


def unsupported(numbers: list[int] | np.ndarray) -> list[int]:
    """The atomic numbers among ``numbers`` that have no reference properties here."""
    return sorted({int(z) for z in numbers} - supported_numbers())
