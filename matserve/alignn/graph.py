"""ALIGNN's input graphs, built with ASE's periodic neighbour list instead of DGL.

Atom graph (as ALIGNN's default ``k-nearest`` construction): for each atom, its neighbours
within ``cutoff`` (periodic images included) up to the ``max_neighbors``-th nearest distance,
ties kept; if an atom has fewer than ``max_neighbors`` neighbours the cutoff grows and the
search is repeated. Edges are directed (both directions present) and carry the bond vector
``r_ij = x_j + image − x_i``.

Line graph: one node per directed bond; bond (i→j) connects to bond (j→k); the angle
feature is the cosine between −r_ij and r_jk, the angle at atom j (ALIGNN's
``compute_bond_cosines``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase.neighborlist import neighbor_list

from matserve.structures import System

CUTOFF = 8.0  # Å
MAX_NEIGHBORS = 12
CUTOFF_GROWTH = 2.0  # Å added per retry when an atom has too few neighbours
MAX_CUTOFF = 64.0


class IsolatedAtomError(ValueError):
    """An atom with no neighbour within the cutoff, or too few even at the largest cutoff searched."""


def isolated_atoms(system: System, cutoff: float = CUTOFF) -> list[int]:
    """Atoms with no other atom (or periodic image) within ``cutoff``: ALIGNN sees nothing around them."""
    counts = np.bincount(neighbor_list("i", system.to_ase(), cutoff), minlength=system.n_atoms)
    return np.flatnonzero(counts == 0).tolist()


@dataclass
class CrystalGraph:
    numbers: torch.Tensor  # (n_atoms,)
    edge_src: torch.Tensor  # (n_edges,)
    edge_dst: torch.Tensor  # (n_edges,)
    bond_vectors: torch.Tensor  # (n_edges, 3) r_ij, Å
    angle_src: torch.Tensor  # (n_angles,) index of bond i→j
    angle_dst: torch.Tensor  # (n_angles,) index of bond j→k
    angle_cosines: torch.Tensor  # (n_angles,)

    @property
    def bond_lengths(self) -> torch.Tensor:
        return torch.linalg.norm(self.bond_vectors, dim=1)


def nearest_neighbor_edges(system: System, cutoff: float = CUTOFF,
                           max_neighbors: int = MAX_NEIGHBORS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, bond vectors) of the k-nearest-neighbour graph, ties at the k-th distance kept."""
    lonely = isolated_atoms(system, cutoff)
    if lonely:
        raise IsolatedAtomError(f"atom {lonely[0]} has no neighbour within {cutoff:g} Å")
    atoms = system.to_ase()
    while True:
        src, dst, vectors = neighbor_list("ijD", atoms, cutoff)
        counts = np.bincount(src, minlength=system.n_atoms)
        if counts.min() >= max_neighbors:
            break
        if cutoff >= MAX_CUTOFF:
            lonely = int(np.argmin(counts))
            raise IsolatedAtomError(
                f"atom {lonely} has {counts[lonely]} neighbours within {cutoff:.0f} Å; {max_neighbors} are needed")
        cutoff += CUTOFF_GROWTH
    distances = np.linalg.norm(vectors, axis=1)
    keep = np.zeros(len(src), dtype=bool)
    for atom in range(system.n_atoms):
        mine = np.flatnonzero(src == atom)
        kth = np.sort(distances[mine])[max_neighbors - 1]
        keep[mine[distances[mine] <= kth + 1e-6]] = True
    # Undirected, as ALIGNN: an edge kept from either end is present in both directions.
    pairs = {}
    for s, d, v in zip(src[keep], dst[keep], vectors[keep]):
        pairs[(int(s), int(d), *np.round(v, 6))] = v
        pairs[(int(d), int(s), *np.round(-v, 6))] = -v
    keys = sorted(pairs)
    return (np.array([k[0] for k in keys]), np.array([k[1] for k in keys]),
            np.array([pairs[k] for k in keys]).reshape(-1, 3))


def line_graph(edge_src: np.ndarray, edge_dst: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, ...]:
    """(bond i→j, bond j→k, cos of the angle at j) for every pair of consecutive bonds."""
    n_atoms = int(max(edge_src.max(initial=-1), edge_dst.max(initial=-1))) + 1
    by_source = np.argsort(edge_src, kind="stable")  # bonds grouped by the atom they leave
    starts = np.searchsorted(edge_src[by_source], np.arange(n_atoms))
    counts = np.bincount(edge_src, minlength=n_atoms)
    following = counts[edge_dst]  # how many bonds leave each bond's end atom
    first_idx = np.repeat(np.arange(len(edge_dst)), following)
    within = np.arange(following.sum()) - np.repeat(np.cumsum(following) - following, following)
    second_idx = by_source[np.repeat(starts[edge_dst], following) + within]
    a, b = -vectors[first_idx], vectors[second_idx]
    cosines = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return first_idx, second_idx, np.clip(cosines, -1.0, 1.0)


def build_graph(system: System, cutoff: float = CUTOFF, max_neighbors: int = MAX_NEIGHBORS) -> CrystalGraph:
    src, dst, vectors = nearest_neighbor_edges(system, cutoff, max_neighbors)
    first, second, cosines = line_graph(src, dst, vectors)
    return CrystalGraph(
        numbers=torch.as_tensor(system.numbers),
        edge_src=torch.as_tensor(src),
        edge_dst=torch.as_tensor(dst),
        bond_vectors=torch.as_tensor(vectors, dtype=torch.float32),
        angle_src=torch.as_tensor(first),
        angle_dst=torch.as_tensor(second),
        angle_cosines=torch.as_tensor(cosines, dtype=torch.float32),
    )
