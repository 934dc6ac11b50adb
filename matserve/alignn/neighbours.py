"""ALIGNN's k-nearest-neighbour crystal graph in plain PyTorch (no pymatgen), on any device.

Same rule as ``matserve.alignn.graph``: every neighbour up to an atom's ``max_neighbors``-th
nearest distance (ties within 1e-6 Å kept), the cutoff grown by 2 Å while an atom has too few
neighbours within it, and an edge kept from either end present in both directions; edges come
ordered by (source, destination, image). Pairs are found by brute force over the periodic images
that can hold a neighbour: along lattice vector k, an image further than
``cutoff / height_k + spread_k`` cells (height: the cell's thickness across the other two vectors;
spread: how far the atoms' fractional coordinates range) cannot. Memory is bounded by doing a few
source atoms at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from matserve.contract import InvalidInput

CUTOFF = 8.0  # Å
MAX_NEIGHBORS = 12
CUTOFF_GROWTH = 2.0  # Å added per retry when an atom has too few neighbours
MAX_CUTOFF = 64.0
SELF_TOLERANCE = 1e-8  # Å: an atom's own image at a distance below this is itself (as pymatgen)
TIE_TOLERANCE = 1e-6  # Å: neighbours this close to the k-th distance are tied with it
PAIRS_PER_CHUNK = 2_000_000  # candidate (source, destination, image) triples held at once


class IsolatedAtomError(InvalidInput):
    """An atom with no neighbour within the cutoff, or too few even at the largest cutoff searched."""


@dataclass
class NeighbourList:
    src: torch.Tensor  # (E,) int64
    dst: torch.Tensor  # (E,) int64
    shifts: torch.Tensor  # (E, 3) int64: the image of dst, in lattice vectors
    vectors: torch.Tensor  # (E, 3) float64: x_dst + shifts · cell − x_src, Å
    distances: torch.Tensor  # (E,) float64


def image_shifts(positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> torch.Tensor:
    """(M, 3) int64 lattice shifts, in lexicographic order, of every image that can lie within ``cutoff``."""
    if abs(float(torch.linalg.det(cell))) < 1e-6:
        raise ValueError("a crystal graph needs a cell of three independent lattice vectors")
    inverse = torch.linalg.inv(cell)
    heights = 1.0 / torch.linalg.norm(inverse, dim=0)  # column k of inv(cell) is reciprocal vector k
    fractional = positions @ inverse
    spread = fractional.amax(0) - fractional.amin(0) if len(positions) else torch.zeros_like(heights)
    reach = [math.floor(cutoff / float(h) + float(s)) if bool(p) else 0 for h, s, p in zip(heights, spread, pbc)]
    ranges = [torch.arange(-r, r + 1, device=positions.device) for r in reach]
    return torch.cartesian_prod(*ranges).reshape(-1, 3)


def pairs_within(positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> NeighbourList:
    """Every (i, j, image) at most ``cutoff`` (+1e-8) Å apart, an atom's own zero-distance image excluded.

    In (source, destination, shift) order: ``nonzero`` walks the (sources, destinations, images)
    array row by row, and the images are in lexicographic order.
    """
    shifts = image_shifts(positions, cell, pbc, cutoff)
    offsets = shifts.to(positions.dtype) @ cell  # (M, 3)
    n_atoms, n_images = len(positions), len(shifts)
    rows = max(1, PAIRS_PER_CHUNK // max(1, n_atoms * n_images))
    found = []
    for start in range(0, n_atoms, rows):
        sources = torch.arange(start, min(start + rows, n_atoms), device=positions.device)
        squared = positions.new_zeros((len(sources), n_atoms, n_images))  # (sources, destinations, images)
        for k in range(3):  # one component at a time: contiguous, and no (…, 3) array held
            component = (positions[None, :, k] - positions[sources, None, k])[:, :, None] + offsets[None, None, :, k]
            squared += component * component
        s, d, m = torch.nonzero(squared <= (cutoff + SELF_TOLERANCE) ** 2, as_tuple=True)
        found.append((sources[s], d, m))
    src, dst, image = (torch.cat(parts) for parts in zip(*found))
    vectors = positions[dst] - positions[src] + offsets[image]
    distances = torch.linalg.norm(vectors, dim=1)
    itself = (src == dst) & (distances <= SELF_TOLERANCE)
    return NeighbourList(src[~itself], dst[~itself], shifts[image[~itself]], vectors[~itself], distances[~itself])


def searched_pairs(positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float,
                   max_neighbors: int) -> NeighbourList:
    """Pairs within the first cutoff that gives every atom ``max_neighbors`` neighbours (grown by 2 Å)."""
    n_atoms = len(positions)
    first_search = True
    while True:
        pairs = pairs_within(positions, cell, pbc, cutoff)
        counts = torch.bincount(pairs.src, minlength=n_atoms)
        if first_search and int(counts.min()) == 0:
            raise IsolatedAtomError(f"atom {int(torch.argmin(counts))} has no neighbour within {cutoff:g} Å")
        first_search = False
        if int(counts.min()) >= max_neighbors:
            return pairs
        if cutoff >= MAX_CUTOFF:
            lonely = int(torch.argmin(counts))
            raise IsolatedAtomError(
                f"atom {lonely} has {int(counts[lonely])} neighbours within {cutoff:.0f} Å; {max_neighbors} are needed")
        cutoff += CUTOFF_GROWTH


def kth_distances(src: torch.Tensor, distances: torch.Tensor, n_atoms: int, k: int) -> torch.Tensor:
    """(n_atoms,) each atom's k-th nearest neighbour distance; ``src`` sorted, every atom with at least k."""
    counts = torch.bincount(src, minlength=n_atoms)
    column = torch.arange(len(src), device=src.device) - (torch.cumsum(counts, 0) - counts)[src]
    table = distances.new_full((n_atoms, int(counts.max())), math.inf)  # one row of distances per atom
    table[src, column] = distances
    return torch.kthvalue(table, k, dim=1).values


def k_nearest_edges(positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float = CUTOFF,
                    max_neighbors: int = MAX_NEIGHBORS) -> NeighbourList:
    """ALIGNN's k-nearest-neighbour edges of one crystal; pass float64 positions and cell for Å-exact vectors."""
    pbc = torch.as_tensor(pbc, dtype=torch.bool)
    pairs = searched_pairs(positions, cell, pbc, cutoff, max_neighbors)
    kth = kth_distances(pairs.src, pairs.distances, len(positions), max_neighbors) + TIE_TOLERANCE
    # Undirected: (i, j, S) is kept if j is within i's k nearest or i within j's; its reverse
    # (j, i, −S) has the same distance, so the rule keeps both directions.
    keep = (pairs.distances <= kth[pairs.src]) | (pairs.distances <= kth[pairs.dst])
    return NeighbourList(pairs.src[keep], pairs.dst[keep], pairs.shifts[keep], pairs.vectors[keep],
                         pairs.distances[keep])
