"""Benchmark structures: real Materials Project crystals from ../shared/data, rattled and strained, seeded."""

from __future__ import annotations

import csv
import gzip
import random
import sys

import numpy as np
from ase import Atoms
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from training.shared_data import MP_STRUCTURES


def mp_crystals(count: int, min_atoms: int = 1, max_atoms: int = 32, max_z: int = 83, seed: int = 0) -> list[Atoms]:
    """``count`` MP crystals with ``min_atoms``–``max_atoms`` atoms (elements up to Bi), drawn with ``seed``."""
    csv.field_size_limit(sys.maxsize)
    with gzip.open(MP_STRUCTURES, "rt") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(seed).shuffle(rows)
    chosen: list[Atoms] = []
    for row in rows:
        structure = Structure.from_str(row["cif"], fmt="cif")
        if min_atoms <= len(structure) <= max_atoms and max(structure.atomic_numbers) <= max_z:
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.info["material_id"] = row["material_id"]
            chosen.append(atoms)
        if len(chosen) == count:
            return chosen
    raise ValueError(f"only {len(chosen)} crystals match")


def perturbed(atoms: Atoms, rattle: float = 0.05, strain: float = 0.03, seed: int = 0) -> Atoms:
    """Rattle positions by ``rattle`` Å and scale the cell isotropically by a uniform factor in ±``strain``."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell * (1 + rng.uniform(-strain, strain)), scale_atoms=True)
    atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
    return atoms
