"""Pieces of the validity evaluation script."""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Lattice, Structure

from matserve.generator.evaluate import main, symmetrized_z
from matserve.shared_data import MP_STRUCTURES


def test_symmetrized_z_counts_formula_units_of_the_conventional_cell():
    primitive_cu = Structure(Lattice.from_parameters(2.55, 2.55, 2.55, 60, 60, 60), ["Cu"], [[0, 0, 0]])
    assert primitive_cu.composition.get_reduced_composition_and_factor()[1] == 1
    assert symmetrized_z(primitive_cu) == 4  # fcc: four atoms in the cubic cell
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert symmetrized_z(rocksalt) == 4


def test_reference_checks_the_validation_cifs_themselves(tmp_path):
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    summary = main(["--reference", "--count", "3", "--z-from", "symmetrized", "--out", str(tmp_path / "cases.json")])
    assert summary["checkpoint"] == "reference CIFs" and summary["compositions"] == 3
    assert summary["valid"] == 3 and summary["failed_checks"] == {}
    cases = json.loads((tmp_path / "cases.json").read_text())
    assert [case["generated"] for case in cases] == [case["reference"] for case in cases]
    assert all(case["generated"].startswith(case["prompt"].split("\n")[0] + "\n") for case in cases)  # same Z
