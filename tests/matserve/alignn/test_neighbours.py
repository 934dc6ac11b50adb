"""The PyTorch neighbour search gives exactly pymatgen's ALIGNN edges: same (src, dst, image) triples
in the same order, bond vectors within 1e-6 Å, on real MP crystals and on cells built to be awkward."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Structure

from matserve.alignn.graph import TORCH_SEARCH_MAX_ATOMS, IsolatedAtomError, nearest_neighbor_edges, pymatgen_edges
from matserve.alignn.neighbours import k_nearest_edges
from matserve.structures import System
from tests.crystals import cu, nacl, rattled, srtio3
from training.shared_data import MP_STRUCTURES

N_CRYSTALS = 80
MAX_ATOMS = 100  # small-to-medium cells: the brute force stays within seconds
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def mp_crystals() -> list[tuple[str, System]]:
    """A seeded sample of mp_cgcnn_36k's crystals of up to MAX_ATOMS atoms."""
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    rows = pd.read_csv(MP_STRUCTURES, usecols=["material_id", "cif"]).sample(n=2 * N_CRYSTALS, random_state=25)
    crystals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's notes on rounded fractional coordinates
        for row in rows.itertuples():
            system = System.from_pymatgen(Structure.from_str(row.cif, fmt="cif"))
            if system.n_atoms <= MAX_ATOMS:
                crystals.append((row.material_id, system))
    return crystals[:N_CRYSTALS]


def assert_same_edges(system: System, device: str = "cpu") -> int:
    """Compare both searches on one crystal; the number of edges compared."""
    src, dst, shifts, vectors = pymatgen_edges(system)
    edges = k_nearest_edges(torch.tensor(system.positions, device=device),
                            torch.tensor(system.cell, device=device), torch.tensor(system.pbc))
    assert edges.src.cpu().numpy().tolist() == src.tolist()
    assert edges.dst.cpu().numpy().tolist() == dst.tolist()
    assert edges.shifts.cpu().numpy().tolist() == shifts.tolist()
    np.testing.assert_allclose(edges.vectors.cpu().numpy(), vectors, rtol=0, atol=1e-6)
    return len(src)


@pytest.mark.parametrize("device", DEVICES)
def test_same_edges_as_pymatgen_on_mp_crystals(mp_crystals, device):
    assert len(mp_crystals) == N_CRYSTALS
    compared = sum(assert_same_edges(system, device) for _, system in mp_crystals)
    sizes = [system.n_atoms for _, system in mp_crystals]
    print(f"{len(mp_crystals)} crystals ({min(sizes)}-{max(sizes)} atoms), {compared} edges identical on {device}")
    assert compared > 20_000


def test_the_served_builder_gives_the_same_edges_on_both_sides_of_its_size_switch(mp_crystals):
    by_size = sorted((system for _, system in mp_crystals), key=lambda system: system.n_atoms)
    assert by_size[-1].n_atoms > TORCH_SEARCH_MAX_ATOMS
    for system in by_size[:5] + by_size[-5:]:
        src, dst, vectors = nearest_neighbor_edges(system)
        reference = pymatgen_edges(system)
        assert src.tolist() == reference[0].tolist() and dst.tolist() == reference[1].tolist()
        np.testing.assert_allclose(vectors, reference[3], rtol=0, atol=1e-6)


def test_awkward_cells():
    skewed = cu()
    skewed.set_cell(np.array([[1, 0, 0], [1, 1, 0], [2, 1, 1]]) @ np.array(skewed.cell), scale_atoms=False)
    outside = rattled(srtio3(), 0.1, seed=3)
    outside.positions += np.array(outside.cell).sum(0) * 1.7  # atoms far outside their cell
    supercell = rattled(nacl() * (2, 2, 2), 0.05, seed=1)
    slab = nacl() * (1, 1, 3)
    slab.pbc = [True, True, False]  # no images along c
    slab.cell[2] *= 3
    for atoms in (skewed, outside, supercell, slab):
        assert_same_edges(System.from_ase(atoms))


def test_a_sparse_cell_grows_the_cutoff_as_pymatgen_does():
    # Two atoms 1 Å apart in a 10 Å box: 1 neighbour within 8 Å, 12 only at a larger cutoff.
    system = System([[0, 0, 0], [1.0, 0, 0]], [1, 1], np.eye(3) * 10.0)
    assert assert_same_edges(system) >= 2 * 12


@pytest.mark.parametrize("system, message", [
    (System([[0, 0, 0], [0.5, 0.5, 0.5]], [1, 1], np.eye(3) * 80.0), "atom 0 has 1 neighbours within 64 Å"),
    (System([[0, 0, 0], [9.0, 9.0, 9.0]], [1, 1], np.eye(3) * 30.0), "atom 0 has no neighbour within 8 Å"),
])
def test_the_same_refusals(system, message):
    for search in (pymatgen_edges, lambda s: k_nearest_edges(torch.tensor(s.positions),
                                                             torch.tensor(s.cell), torch.tensor(s.pbc))):
        with pytest.raises(IsolatedAtomError, match=message):
            search(system)
