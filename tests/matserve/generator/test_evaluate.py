"""Pieces of the validity evaluation script."""

from __future__ import annotations

import json

import pytest
import torch
from pymatgen.core import Composition, Lattice, Structure

from training.generator.evaluate import cell_size_bin, main, sample, symmetrized_z, validity_by_cell_atoms
from matserve.generator.model import GPT, GPTConfig
from training.shared_data import MP_STRUCTURES
from tests.matserve.generator.random_models import scrambled


def test_symmetrized_z_counts_formula_units_of_the_conventional_cell():
    primitive_cu = Structure(Lattice.from_parameters(2.55, 2.55, 2.55, 60, 60, 60), ["Cu"], [[0, 0, 0]])
    assert primitive_cu.composition.get_reduced_composition_and_factor()[1] == 1
    assert symmetrized_z(primitive_cu) == 4  # fcc: four atoms in the cubic cell
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert symmetrized_z(rocksalt) == 4


def test_validity_is_broken_down_by_atoms_in_the_cell():
    assert [cell_size_bin(atoms) for atoms in (1, 4, 5, 8, 9, 16, 17, 32, 33, 200)] == \
        ["1-4", "1-4", "5-8", "5-8", "9-16", "9-16", "17-32", "17-32", "33+", "33+"]
    cases = [{"atoms": 40, "valid": False}, {"atoms": 2, "valid": True}, {"atoms": 3, "valid": False},
             {"atoms": 12, "valid": True}, {"atoms": 64, "valid": True}]
    assert json.dumps(validity_by_cell_atoms(cases)) == json.dumps(  # bins in size order, empty ones left out
        {"1-4": {"valid": 1, "of": 2}, "9-16": {"valid": 1, "of": 1}, "33+": {"valid": 1, "of": 2}})


def test_sample_passes_its_temperature_on():
    torch.manual_seed(0)
    model = scrambled(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=1024)))

    def text(seed: int, temperature: float) -> str:
        cases = [{"prompt": "data_Na4Cl4\n"}]
        sample(cases, model, batch_size=1, seed=seed, temperature=temperature, max_new_tokens=60)
        return cases[0]["generated"]

    assert text(0, 0.0) == text(7, 0.0)  # greedy: the seed plays no part
    assert text(0, 0.8) != text(7, 0.8)


def test_reference_checks_the_validation_cifs_themselves(tmp_path):
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    summary = main(["--reference", "--count", "3", "--z-from", "symmetrized", "--out", str(tmp_path / "cases.json")])
    assert summary["checkpoint"] == "reference CIFs" and summary["compositions"] == 3
    assert summary["valid"] == 3 and summary["failed_checks"] == {}
    assert sum(count["of"] for count in summary["validity_by_cell_atoms"].values()) == 3
    cases = json.loads((tmp_path / "cases.json").read_text())
    assert [case["generated"] for case in cases] == [case["reference"] for case in cases]
    assert all(case["generated"].startswith(case["prompt"].split("\n")[0] + "\n") for case in cases)  # same Z
    assert [case["atoms"] for case in cases] == [Composition(case["prompt"][5:]).num_atoms for case in cases]
