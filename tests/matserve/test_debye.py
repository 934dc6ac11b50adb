import math

import pytest

from matserve.properties.debye import cp_from_cv, debye_cv


def test_high_temperature_limit_is_dulong_petit():
    assert debye_cv(100.0, 3000.0) == pytest.approx(3.0, rel=1e-3)


def test_low_temperature_limit_is_the_t_cubed_law():
    theta, t = 400.0, 4.0
    assert debye_cv(theta, t) == pytest.approx(12 * math.pi**4 / 5 * (t / theta) ** 3, rel=1e-4)


def test_copper_at_room_temperature():
    # θ_D(Cu) = 343 K, θ/T = 1.143: the tabulated Debye function gives Cv/3R = 0.9376, so 2.813 kB/atom.
    assert debye_cv(343.0, 300.0) == pytest.approx(2.813, abs=0.003)


def test_cv_falls_as_the_debye_temperature_rises():
    values = [debye_cv(theta) for theta in (100, 300, 600, 1200, 2000)]
    assert values == sorted(values, reverse=True)


def test_cp_exceeds_cv_by_the_thermodynamic_identity():
    # Copper: α = 4.95e-5 /K (volumetric), B = 140 GPa, V = 11.8 Å³/atom (7.11 cm³/mol):
    # α² B V T = 0.732 J/(mol K) = 0.088 kB per atom at 300 K.
    cv = debye_cv(343.0)
    cp = cp_from_cv(cv, 4.95e-5, 140.0, 11.8)
    assert cp - cv == pytest.approx(0.088, abs=0.002)
    assert cp_from_cv(cv, 0.0, 140.0, 11.8) == cv
