"""Heat capacities from a Debye temperature, as AFLOW's AGL method derives them.

Cv per atom from the Debye model; Cp from Cv through the thermodynamic identity
Cp − Cv = α² B V T (α volumetric thermal expansion, B bulk modulus, V volume per atom).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad

BOLTZMANN_EV = 8.617333262e-5  # eV/K
GPA_A3_TO_EV = 1 / 160.21766208  # 1 GPa·Å³ in eV


def debye_function_cv(x_max: float) -> float:
    """3 (T/θ)³ ∫₀^{θ/T} x⁴ eˣ / (eˣ − 1)² dx, the Debye heat capacity per atom in kB."""
    if x_max <= 0:
        return 3.0
    integrand = lambda x: x**4 * np.exp(-x) / (-np.expm1(-x)) ** 2 if x > 0 else 0.0  # noqa: E731
    integral, _ = quad(integrand, 0.0, x_max, limit=200)
    return 9.0 * integral / x_max**3


def debye_cv(debye_temperature: float, temperature: float = 300.0) -> float:
    """Cv per atom in kB for a Debye temperature θ (K) at ``temperature`` (K)."""
    if debye_temperature <= 0 or temperature <= 0:
        raise ValueError("Debye temperature and temperature must be positive")
    return debye_function_cv(debye_temperature / temperature)


def cp_from_cv(cv_kb: float, thermal_expansion: float, bulk_modulus_gpa: float, volume_per_atom: float,
               temperature: float = 300.0) -> float:
    """Cp per atom in kB: Cv + α² B V T / kB (α volumetric, 1/K; B in GPa; V in Å³ per atom)."""
    extra_ev = thermal_expansion**2 * bulk_modulus_gpa * GPA_A3_TO_EV * volume_per_atom * temperature
    return cv_kb + extra_ev / BOLTZMANN_EV
