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

from matserve.contract import InvalidInput

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


class StructureParseError(InvalidInput):
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
    except Exception:  # pymatgen raises many types for bad files, in its own terms: say what is wrong in ours
        problem = cif_problem(text) if fmt == "cif" else poscar_problem(text)
        raise StructureParseError(problem) from None
    if len(structure) == 0:
        raise StructureParseError(f"the {fmt.upper()} has no atoms")
    if structure.lattice.volume < 1e-3:
        raise StructureParseError(f"the {fmt.upper()} has a degenerate cell")
    return System.from_pymatgen(structure)


POSCAR_LAYOUT = ("a VASP 5 POSCAR has a comment line, a scaling factor, 3 lattice vectors, the element symbols, "
                 "the atom counts, Direct or Cartesian, then one line of 3 coordinates per atom")
CIF_CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c",
                 "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
CIF_LAYOUT = ("a CIF needs its cell lengths and angles (_cell_length_a, _cell_angle_alpha, ...) and an _atom_site_ "
              "loop with element symbols and fractional coordinates")


def _numbers(line: str, count: int) -> bool:
    """Whether ``line`` starts with ``count`` numbers."""
    fields = line.split()
    if len(fields) < count:
        return False
    try:
        [float(field) for field in fields[:count]]
    except ValueError:
        return False
    return True


def poscar_problem(text: str) -> str:
    """Why ``text`` is not a readable POSCAR, in the file's terms (line numbers from 1)."""
    lines = text.splitlines()
    if len(lines) < 8:
        many = "line" if len(lines) == 1 else "lines"
        return f"the file is neither a CIF nor a POSCAR: it has {len(lines)} {many}, and {POSCAR_LAYOUT}"
    if not _numbers(lines[1], 1):
        return "line 2 of the POSCAR (the scaling factor) is not a number"
    for i, name in zip(range(2, 5), "abc"):
        if not _numbers(lines[i], 3):
            return f"line {i + 1} of the POSCAR (lattice vector {name}) does not hold 3 numbers"
    counts_line = 6 if not _numbers(lines[5], 1) else 5  # VASP 5 has the symbols first, VASP 4 only counts
    try:
        counts = [int(field) for field in lines[counts_line].split()]
    except ValueError:
        counts = []
    if not counts or any(n <= 0 for n in counts):
        return f"line {counts_line + 1} of the POSCAR (the atom counts) must hold positive whole numbers"
    if counts_line == 6 and len(lines[5].split()) != len(counts):
        return (f"line 6 of the POSCAR names {len(lines[5].split())} elements but line 7 gives "
                f"{len(counts)} atom counts")
    first = counts_line + 2
    if first - 1 < len(lines) and lines[first - 1].strip()[:1].lower() == "s":  # Selective dynamics
        first += 1
    coordinates = [line for line in lines[first:] if line.strip()]
    n_atoms = sum(counts)
    if len(coordinates) < n_atoms:
        return f"the POSCAR counts {n_atoms} atoms but has {len(coordinates)} coordinate lines after line {first}"
    for k, line in enumerate(coordinates[:n_atoms]):
        if not _numbers(line, 3):
            return f"the coordinates of atom {k + 1} in the POSCAR are not 3 numbers"
    return f"the POSCAR could not be read; {POSCAR_LAYOUT}"


def cif_problem(text: str) -> str:
    """Why ``text`` is not a readable CIF, naming the tags it lacks."""
    lowered = text.lower()
    missing = [tag for tag in CIF_CELL_TAGS if tag not in lowered]
    if missing:
        return f"the CIF has no {', '.join(missing)}; {CIF_LAYOUT}"
    coordinates = ("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")
    if not all(tag in lowered for tag in coordinates):
        return f"the CIF has no fractional atom coordinates (_atom_site_fract_x, _y, _z); {CIF_LAYOUT}"
    return f"the CIF does not describe a complete crystal structure; {CIF_LAYOUT}"
