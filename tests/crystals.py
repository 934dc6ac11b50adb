"""Real crystals used across the tests (experimental lattice constants)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk


def si() -> Atoms:
    return bulk("Si", "diamond", a=5.43)


def nacl() -> Atoms:
    return bulk("NaCl", "rocksalt", a=5.64)


def mgo() -> Atoms:
    return bulk("MgO", "rocksalt", a=4.21)


def cu() -> Atoms:
    return bulk("Cu", "fcc", a=3.61)


def srtio3() -> Atoms:
    a = 3.905
    return Atoms("SrTiO3", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                 cell=np.eye(3) * a, pbc=True)


def rattled(atoms: Atoms, amount: float = 0.05, seed: int = 0, strain: float = 0.0) -> Atoms:
    atoms = atoms.copy()
    if strain:
        atoms.set_cell(atoms.cell * (1 + strain), scale_atoms=True)
    atoms.rattle(amount, seed=seed)
    return atoms
