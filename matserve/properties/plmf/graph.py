"""The plmf crystal graph: Voronoi neighbours with the covalent-radius rule of Isayev et al. (2017).

Two atoms are connected when (i) their Voronoi cells share a face and (ii) their distance is
at most the sum of their Cordero covalent radii plus 0.25 Å (the rule of the paper, also
pymatgen's ``IsayevNN``). The tessellation is the one pymatgen's ``VoronoiNN`` builds, read out
faster (see ``voronoi_faces``).

One addition of ours: an atom that the distance rule leaves without any neighbour (the
alkali metals, whose metallic bonds are longer than their covalent radii allow, e.g. bcc K)
keeps its Voronoi faces of at least ``FALLBACK_AREA_FRACTION`` of its largest face, so that
every vertex has a first shell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure
from scipy.spatial import QhullError, Voronoi

from matserve.properties.plmf.elements import covalent_radii

BOND_TOLERANCE = 0.25  # Å, added to the sum of covalent radii (the paper's value)
FALLBACK_AREA_FRACTION = 0.2
VORONOI_CUTOFF = 8.0  # Å: images within this distance of the cell enter the tessellation


@dataclass(frozen=True)
class Neighbour:
    index: int  # site index in the structure of the neighbouring atom (any periodic image)
    distance: float  # Å
    area: float  # Å², the shared Voronoi face


def _polygon_areas(vertices: np.ndarray, faces: list[list[int]], normals: np.ndarray) -> np.ndarray:
    """Area of each planar face (vertex indices in any order; normal is the face's unit normal)."""
    areas = np.empty(len(faces))
    for k, face in enumerate(faces):
        corners = vertices[face]
        centred = corners - corners.mean(axis=0)
        u = centred[0] / np.linalg.norm(centred[0])
        v = np.cross(normals[k], u)
        order = np.argsort(np.arctan2(centred @ v, centred @ u))  # walk the polygon around its centre
        ring = centred[order]
        areas[k] = 0.5 * abs(np.dot(np.cross(ring, np.roll(ring, -1, axis=0)).sum(axis=0), normals[k]))
    return areas


def voronoi_faces(structure: Structure, cutoff: float = VORONOI_CUTOFF) -> list[list[Neighbour]]:
    """Every Voronoi face of every site, as the neighbour across it.

    The same tessellation as pymatgen's ``VoronoiNN.get_all_voronoi_polyhedra`` (the sites of the
    cell plus their periodic images within ``cutoff``, from pymatgen's neighbour list, through
    scipy's Voronoi), with the faces read from it at once rather than site by site: many times
    faster on large cells. tests/matserve/test_plmf.py checks that both give the same neighbours.
    """
    n = len(structure)
    for attempt_cutoff in (cutoff, 1.5 * cutoff, 2.5 * cutoff):
        centres, images, offsets, _ = structure.get_neighbor_list(attempt_cutoff)
        keys = np.unique(np.column_stack([images, offsets.round().astype(int)]), axis=0)
        keys = keys[np.any(keys[:, 1:] != 0, axis=1)]  # images outside the cell; the cell's own sites come first
        frac = structure.frac_coords  # as given: the offsets are relative to these
        points = np.vstack([frac, frac[keys[:, 0]] + keys[:, 1:]]) @ structure.lattice.matrix
        owner = np.concatenate([np.arange(n), keys[:, 0]])
        try:
            tessellation = Voronoi(points)
        except QhullError:
            continue
        pairs = tessellation.ridge_points
        mine = np.nonzero((pairs < n).any(axis=1))[0]
        if any(-1 in tessellation.ridge_vertices[r] for r in mine):
            continue  # an open cell: too few images around a sparse structure
        break
    else:
        raise ValueError("Voronoi tessellation failed: the structure is too sparse for the cutoff")
    faces: list[list[Neighbour]] = [[] for _ in range(n)]
    ridges = [tessellation.ridge_vertices[r] for r in mine]
    a, b = pairs[mine, 0], pairs[mine, 1]
    bonds = points[b] - points[a]
    distances = np.linalg.norm(bonds, axis=1)
    areas = _polygon_areas(tessellation.vertices, ridges, bonds / distances[:, None])
    for k in range(len(mine)):
        for here, there in ((a[k], b[k]), (b[k], a[k])):
            if here < n:
                faces[here].append(Neighbour(int(owner[there]), float(distances[k]), float(areas[k])))
    return faces


def plmf_neighbours(structure: Structure, cutoff: float = VORONOI_CUTOFF) -> list[list[Neighbour]]:
    """The neighbours of each site under the plmf rule (face shared and d ≤ r_i + r_j + 0.25 Å)."""
    radii = covalent_radii()
    numbers = structure.atomic_numbers
    result = []
    for i, faces in enumerate(voronoi_faces(structure, cutoff)):
        bonded = [f for f in faces if f.distance <= radii[numbers[i]] + radii[numbers[f.index]] + BOND_TOLERANCE]
        if not bonded:
            largest = max(f.area for f in faces)
            bonded = [f for f in faces if f.area >= FALLBACK_AREA_FRACTION * largest]
        result.append(bonded)
    return result


def adjacency(neighbours: list[list[Neighbour]]) -> np.ndarray:
    """(n, n) matrix: entry (i, j) counts the neighbours of site i that are images of site j."""
    matrix = np.zeros((len(neighbours), len(neighbours)))
    for i, shell in enumerate(neighbours):
        for neighbour in shell:
            matrix[i, neighbour.index] += 1.0
    return matrix
