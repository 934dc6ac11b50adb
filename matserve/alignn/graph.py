"""ALIGNN's input graphs, built with a periodic neighbour search instead of DGL.

Atom graph (as ALIGNN's default ``k-nearest`` construction): for each atom, its neighbours
within ``cutoff`` (periodic images included) up to the ``max_neighbors``-th nearest distance,
ties kept; if an atom has fewer than ``max_neighbors`` neighbours the cutoff grows and the
search is repeated. Edges are directed (both directions present) and carry the bond vector
``r_ij = x_j + image − x_i``. Two searches give exactly the same edges (tested on MP crystals):
``matserve.alignn.neighbours`` in PyTorch, used up to ``TORCH_SEARCH_MAX_ATOMS`` atoms, where its
brute force is at least as fast on a CPU, and pymatgen's cell-list search for larger cells.

Line graph: one node per directed bond; bond (i→j) connects to bond (j→k); the angle
feature is the cosine between −r_ij and r_jk, the angle at atom j (ALIGNN's
``compute_bond_cosines``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from matserve.alignn.neighbours import CUTOFF, CUTOFF_GROWTH, MAX_CUTOFF, MAX_NEIGHBORS, IsolatedAtomError, \
    k_nearest_edges

if TYPE_CHECKING:  # no pymatgen needed to import this module (the device runner has none)
    from matserve.structures import System

__all__ = ["CUTOFF", "MAX_NEIGHBORS", "IsolatedAtomError", "CrystalGraph", "build_graph", "line_graph",
           "nearest_neighbor_edges", "pymatgen_edges"]

TORCH_SEARCH_MAX_ATOMS = 64  # measured: above this, pymatgen's cell lists beat the brute force on a CPU


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
    if system.n_atoms <= TORCH_SEARCH_MAX_ATOMS:
        edges = k_nearest_edges(torch.tensor(system.positions), torch.tensor(system.cell),
                                torch.tensor(system.pbc), cutoff, max_neighbors)
        return edges.src.numpy(), edges.dst.numpy(), edges.vectors.numpy()
    src, dst, _, vectors = pymatgen_edges(system, cutoff, max_neighbors)
    return src, dst, vectors


def pymatgen_edges(system: System, cutoff: float = CUTOFF,
                   max_neighbors: int = MAX_NEIGHBORS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, image shifts, bond vectors) from pymatgen's neighbour list, in (src, dst, shift) order."""
    structure = system.to_pymatgen()
    first_search = True
    while True:
        src, dst, images, distances = structure.get_neighbor_list(cutoff)  # pymatgen's fast cython search
        counts = np.bincount(src, minlength=system.n_atoms)
        if first_search and counts.min() == 0:
            raise IsolatedAtomError(f"atom {int(np.argmin(counts))} has no neighbour within {cutoff:g} Å")
        first_search = False
        if counts.min() >= max_neighbors:
            break
        if cutoff >= MAX_CUTOFF:
            lonely = int(np.argmin(counts))
            raise IsolatedAtomError(
                f"atom {lonely} has {counts[lonely]} neighbours within {cutoff:.0f} Å; {max_neighbors} are needed")
        cutoff += CUTOFF_GROWTH
    shifts = np.rint(images).astype(np.int64)
    coords = structure.cart_coords
    vectors = coords[dst] + shifts @ structure.lattice.matrix - coords[src]
    # The k-th nearest distance of each atom; every neighbour up to it (ties included) is kept.
    by_atom_then_distance = np.lexsort((distances, src))
    first_of_atom = np.searchsorted(src[by_atom_then_distance], np.arange(system.n_atoms))
    kth = distances[by_atom_then_distance[first_of_atom + max_neighbors - 1]]
    keep = distances <= kth[src] + 1e-6
    # Undirected, as ALIGNN: an edge kept from either end is present in both directions.
    # Bond (i, j, image S) and (j, i, −S) both are in the list; find each one's partner by a code.
    code = _edge_codes(src, dst, shifts, system.n_atoms)
    order = np.argsort(code)
    partner = order[np.searchsorted(code[order], _edge_codes(dst, src, -shifts, system.n_atoms))]
    keep |= keep[partner]
    chosen = np.flatnonzero(keep)
    chosen = chosen[np.lexsort((code[chosen],))]
    return src[chosen], dst[chosen], shifts[chosen], vectors[chosen]


def _edge_codes(src: np.ndarray, dst: np.ndarray, shifts: np.ndarray, n_atoms: int) -> np.ndarray:
    """One integer per (source, destination, periodic image) triple."""
    base = 2 * int(MAX_CUTOFF) + 1  # image indices lie within ±MAX_CUTOFF for cells over 1 Å
    image = ((shifts[:, 0] + MAX_CUTOFF) * base + shifts[:, 1] + MAX_CUTOFF) * base + shifts[:, 2] + MAX_CUTOFF
    return (src.astype(np.int64) * n_atoms + dst) * base**3 + image.astype(np.int64)


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
