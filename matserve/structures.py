"""Atomic structures: one system (`System`), many packed into one batch (`Batch`).

A batch follows torch-sim's layout: all atoms of all systems concatenated, with a
per-atom ``system_idx`` saying which system each atom belongs to. Molecules
(no periodic direction) carry a zero cell and ``pbc`` all false.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from pymatgen.core import Lattice, Structure

MIN_DISTANCE = 0.5  # Å: closer atoms are a user error, not physics
MAX_ATOMIC_NUMBER = 118


@dataclass
class System:
    """One structure as the APIs carry it (positions in Å, cell rows are lattice vectors)."""

    positions: np.ndarray  # (n, 3) float64
    numbers: np.ndarray  # (n,) int64
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))  # (3, 3)
    pbc: np.ndarray = field(default_factory=lambda: np.ones(3, dtype=bool))  # (3,)
    active_mask: np.ndarray | None = None  # (n,) bool, True = may move

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(3)
        if self.active_mask is not None:
            self.active_mask = np.asarray(self.active_mask, dtype=bool).reshape(-1)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def is_molecule(self) -> bool:
        return not self.pbc.any()

    @classmethod
    def from_ase(cls, atoms: Atoms) -> "System":
        return cls(atoms.get_positions(), atoms.get_atomic_numbers(), np.array(atoms.get_cell()), atoms.get_pbc())

    @classmethod
    def from_pymatgen(cls, structure: Structure) -> "System":
        return cls(structure.cart_coords, structure.atomic_numbers, structure.lattice.matrix, structure.lattice.pbc)

    def to_ase(self) -> Atoms:
        return Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)

    def to_pymatgen(self) -> Structure:
        return Structure(Lattice(self.cell, pbc=tuple(bool(p) for p in self.pbc)), self.numbers, self.positions,
                         coords_are_cartesian=True)


def minimum_distance(system: System, cutoff: float = 3.0) -> float:
    """Shortest interatomic distance, periodic images included; inf when none is within ``cutoff`` Å."""
    if system.n_atoms == 0:
        return float("inf")
    if system.is_molecule:
        if system.n_atoms < 2:
            return float("inf")
        diff = system.positions[:, None, :] - system.positions[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        closest = float(dist[np.triu_indices(system.n_atoms, k=1)].min())
        return closest if closest <= cutoff else float("inf")
    _, _, d = neighbor_list("ijd", system.to_ase(), cutoff)
    return float(d.min()) if len(d) else float("inf")


def isolated_atoms(system: System, cutoff: float) -> list[int]:
    """Atoms with no other atom (or periodic image) within ``cutoff`` Å."""
    if system.is_molecule:
        centres = neighbor_list("i", system.to_ase(), cutoff)
    else:
        centres = system.to_pymatgen().get_neighbor_list(cutoff)[0]  # far faster than ASE's at 8 Å
    return np.flatnonzero(np.bincount(centres, minlength=system.n_atoms) == 0).tolist()


@dataclass
class Batch:
    """Many systems packed into flat tensors."""

    positions: torch.Tensor  # (N, 3)
    numbers: torch.Tensor  # (N,) long
    cells: torch.Tensor  # (B, 3, 3)
    pbc: torch.Tensor  # (B, 3) bool
    n_atoms: torch.Tensor  # (B,) long

    @property
    def n_systems(self) -> int:
        return len(self.n_atoms)

    @property
    def system_idx(self) -> torch.Tensor:
        """(N,) index of the system each atom belongs to."""
        return torch.repeat_interleave(torch.arange(self.n_systems, device=self.n_atoms.device), self.n_atoms)

    @property
    def offsets(self) -> list[int]:
        """Start of each system in the atom arrays, plus the total at the end."""
        return [0, *torch.cumsum(self.n_atoms, 0).tolist()]

    def split_atoms(self, per_atom: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(per_atom, self.n_atoms.tolist()))


def pack(systems: list[System], dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> Batch:
    return Batch(
        positions=torch.as_tensor(np.concatenate([s.positions for s in systems]), dtype=dtype, device=device),
        numbers=torch.as_tensor(np.concatenate([s.numbers for s in systems]), dtype=torch.long, device=device),
        cells=torch.as_tensor(np.stack([s.cell for s in systems]), dtype=dtype, device=device),
        pbc=torch.as_tensor(np.stack([s.pbc for s in systems]), dtype=torch.bool, device=device),
        n_atoms=torch.as_tensor([s.n_atoms for s in systems], dtype=torch.long, device=device),
    )


def unpack(batch: Batch) -> list[System]:
    positions = batch.split_atoms(batch.positions.detach().cpu())
    numbers = batch.split_atoms(batch.numbers.cpu())
    return [
        System(pos.numpy(), num.numpy(), cell.numpy(), pbc.numpy())
        for pos, num, cell, pbc in zip(positions, numbers, batch.cells.detach().cpu(), batch.pbc.cpu())
    ]


class StructureParseError(ValueError):
    """A POSCAR or CIF text that does not describe a structure."""


def looks_like_cif(text: str) -> bool:
    return any(line.strip().startswith(("data_", "_cell_length_a", "loop_")) for line in text.splitlines()[:200])


def parse_structure_text(text: str) -> System:
    """A VASP 5 POSCAR or a CIF, recognised by content, as a System; StructureParseError says why not."""
    import warnings

    if not text or not text.strip():
        raise StructureParseError("the structure file is empty")
    fmt = "cif" if looks_like_cif(text) else "poscar"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(text, fmt=fmt)
    except Exception as error:  # pymatgen raises many types for bad files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StructureParseError(f"could not read the {fmt.upper()}: {reason}") from None
    if len(structure) == 0:
        raise StructureParseError(f"the {fmt.upper()} has no atoms")
    if structure.lattice.volume < 1e-3:
        raise StructureParseError(f"the {fmt.upper()} has a degenerate cell")
    return System.from_pymatgen(structure)
