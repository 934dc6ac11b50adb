"""Property-labelled materials fragments (plmf) as a fixed-length feature vector.

After Isayev et al., Nat. Commun. 8, 15679 (2017): the crystal is a periodic graph of Voronoi
neighbours (``graph.py``), each vertex labelled with elemental reference properties
(``elements.py``), and the graph is cut into fragments whose property labels make the
features. Ours is a compact, fixed-length version of that idea; for every reference
property p:

- vertices (1-atom fragments): the composition statistics of p (mean, mean absolute
  deviation, min, max, range over the atoms of the cell);
- edges (2-atom path fragments): mean and max of |p_i − p_j| over bonded pairs;
- circular fragments (an atom and its first shell): for each atom the mean |p_i − p_j| over
  its neighbours j, then the mean and max of that over atoms, and the mean of
  |p_i − mean_j p_j| (how the atom differs from its shell);
- longer path fragments (3 and 4 atoms): the mean |p_start − p_end| over walks of two and
  three bonds, each atom's walks weighted as a random walk (row-normalised adjacency),
  so the cost stays that of a matrix product.

Plus crystal-wide features: coordination numbers (mean, std, min, max), volume per atom,
packing fraction of covalent spheres, density, mean bond length over the sum of covalent
radii, the fraction of bonds between atoms of the same element; and the composition-wide
ones below. The paper counts labelled fragment types; we take statistics of property
differences over the same fragments instead, which gives a vector of fixed length.

The composition-only featuriser (for the AFLOW sets that carry no structure) is the vertex
part alone: the same composition statistics plus the composition-wide features.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Composition, Structure

from matserve.contract import check_elements
from matserve.properties.plmf.elements import PROPERTY_NAMES, covalent_radii, property_table, supported_numbers
from matserve.properties.plmf.graph import adjacency, plmf_neighbours

COMPOSITION_STATS = ("mean", "avg_dev", "min", "max", "range")
FRAGMENT_STATS = ("edge_mean_diff", "edge_max_diff", "shell_mean_diff", "shell_max_diff", "shell_contrast",
                  "walk2_mean_diff", "walk3_mean_diff")
COMPOSITION_GLOBALS = ("n_elements", "fraction_norm_2", "fraction_norm_3", "fraction_norm_5",
                       "frac_s_valence", "frac_p_valence", "frac_d_valence", "frac_f_valence")
STRUCTURE_GLOBALS = ("coordination_mean", "coordination_std", "coordination_min", "coordination_max",
                     "volume_per_atom", "packing_fraction", "density", "bond_length_ratio", "homonuclear_bond_fraction")


def composition_feature_names() -> list[str]:
    names = [f"{prop}.{stat}" for prop in PROPERTY_NAMES for stat in COMPOSITION_STATS]
    return names + list(COMPOSITION_GLOBALS)


def structure_feature_names() -> list[str]:
    fragments = [f"{prop}.{stat}" for prop in PROPERTY_NAMES for stat in FRAGMENT_STATS]
    return composition_feature_names() + fragments + list(STRUCTURE_GLOBALS)


def _check(numbers: list[int]) -> None:
    check_elements("plmf", numbers, supported_numbers())  # no elemental reference properties


def _weighted_stats(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_items, n_props) values and item weights summing to 1 → mean, avg_dev, min, max, range per property."""
    mean = weights @ values
    avg_dev = weights @ np.abs(values - mean)
    low, high = values.min(axis=0), values.max(axis=0)
    return np.stack([mean, avg_dev, low, high, high - low], axis=1).reshape(-1)


def _composition_vector(numbers: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    table = property_table()
    labels = table[numbers]
    stats = _weighted_stats(labels, fractions)
    valence = labels[:, [PROPERTY_NAMES.index(f"valence_{orbital}") for orbital in "spdf"]]
    valence_mean = fractions @ valence
    total = valence_mean.sum()
    valence_share = valence_mean / total if total > 0 else np.zeros(4)
    norms = [np.sum(fractions**p) ** (1.0 / p) for p in (2, 3, 5)]
    return np.concatenate([stats, [len(numbers), *norms], valence_share])


def composition_features(composition: Composition | str) -> np.ndarray:
    """The composition-only feature vector (``composition_feature_names()``)."""
    composition = Composition(composition)
    amounts = composition.get_el_amt_dict()
    numbers = np.array([Composition(symbol).elements[0].Z for symbol in amounts])
    _check(numbers.tolist())
    fractions = np.array(list(amounts.values()), dtype=float)
    return _composition_vector(numbers, fractions / fractions.sum())


def _fragment_vector(labels: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """The FRAGMENT_STATS for every property: (n_props × 7,) in property-major order."""
    degree = adj.sum(axis=1)
    walk = adj / degree[:, None]  # each site has at least one neighbour (graph.py)
    rows, cols = np.nonzero(adj)
    counts = adj[rows, cols]
    edge_diff = np.abs(labels[rows] - labels[cols])  # (n_pairs, n_props)
    edge_mean = counts @ edge_diff / counts.sum()
    edge_max = edge_diff.max(axis=0)
    shell_diff = np.empty_like(labels)
    walk2 = walk @ walk
    walk3 = walk2 @ walk
    walk2_diff = np.empty(labels.shape[1])
    walk3_diff = np.empty(labels.shape[1])
    for p in range(labels.shape[1]):  # one (n, n) difference matrix at a time: large cells stay small in memory
        diff = np.abs(labels[:, p, None] - labels[None, :, p])
        shell_diff[:, p] = (walk * diff).sum(axis=1)
        walk2_diff[p] = (walk2 * diff).sum() / len(labels)
        walk3_diff[p] = (walk3 * diff).sum() / len(labels)
    contrast = np.abs(labels - walk @ labels).mean(axis=0)
    stats = np.stack([edge_mean, edge_max, shell_diff.mean(axis=0), shell_diff.max(axis=0), contrast,
                      walk2_diff, walk3_diff], axis=1)
    return stats.reshape(-1)


def structure_features(structure: Structure) -> np.ndarray:
    """The plmf feature vector of one ordered structure (``structure_feature_names()``)."""
    numbers = np.array(structure.atomic_numbers)
    _check(numbers.tolist())
    neighbours = plmf_neighbours(structure)
    adj = adjacency(neighbours)
    labels = property_table()[numbers]

    unique, counts = np.unique(numbers, return_counts=True)
    composition = _composition_vector(unique, counts / counts.sum())
    fragments = _fragment_vector(labels, adj)

    radii = covalent_radii()
    degree = adj.sum(axis=1)
    bonds = [(i, n) for i, shell in enumerate(neighbours) for n in shell]
    bond_ratio = np.mean([n.distance / (radii[numbers[i]] + radii[numbers[n.index]]) for i, n in bonds])
    homonuclear = np.mean([numbers[i] == numbers[n.index] for i, n in bonds])
    volume = structure.volume
    packing = np.sum(4.0 / 3.0 * np.pi * radii[numbers] ** 3) / volume
    crystal = [degree.mean(), degree.std(), degree.min(), degree.max(), volume / len(numbers), packing,
               structure.density, bond_ratio, homonuclear]
    return np.concatenate([composition, fragments, crystal])
