"""The MP formation-energy set (``mp_cgcnn_36k``) as ALIGNN graphs, with its train/val/test split.

Building the neighbour lists takes ~20 ms a crystal, so they are cached once under
``.matserve/alignn/``. Line graphs and atom features are computed once when a split is loaded
(``Example.prepare``), so a training batch only concatenates tensors. pymatgen is needed only to
build the cache from CIFs, not to train from it (the GPU machine has none).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from matserve.alignn.features import atom_features
from matserve.alignn.graph import CrystalGraph, line_graph, nearest_neighbor_edges
from matserve.alignn.model import GraphBatch, pack_graphs
from training.shared_data import MP_SPLITS, MP_STRUCTURES

CACHE_DIR = Path(".matserve") / "alignn"


@dataclass
class Example:
    material_id: str
    numbers: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    bond_vectors: np.ndarray  # float32
    target: float
    angles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the line graph, if computed elsewhere
    prepared: tuple[CrystalGraph, torch.Tensor] | None = None  # (graph, atom features), once computed

    def prepare(self) -> tuple[CrystalGraph, torch.Tensor]:
        """The graph with its line graph, and the atom features: computed on first use, then kept."""
        if self.prepared is None:
            angles = self.angles if self.angles is not None else \
                line_graph(self.edge_src, self.edge_dst, self.bond_vectors)
            first, second, cosines = angles
            graph = CrystalGraph(
                numbers=torch.as_tensor(self.numbers), edge_src=torch.as_tensor(self.edge_src),
                edge_dst=torch.as_tensor(self.edge_dst), bond_vectors=torch.as_tensor(self.bond_vectors),
                angle_src=torch.as_tensor(first), angle_dst=torch.as_tensor(second),
                angle_cosines=torch.as_tensor(cosines, dtype=torch.float32))
            self.prepared = graph, atom_features(self.numbers)
        return self.prepared

    def graph(self) -> CrystalGraph:
        return self.prepare()[0]


def labelled_split(target: str = "formation_energy_per_atom") -> pd.DataFrame:
    """Rows of mp_cgcnn_36k with a ``split`` column (materials missing from the split file dropped)."""
    structures = pd.read_csv(MP_STRUCTURES, usecols=["material_id", target, "cif"])
    splits = pd.read_csv(MP_SPLITS, usecols=["material_id", "split"])
    return structures.merge(splits, on="material_id").rename(columns={target: "target"})


def build_examples(rows: pd.DataFrame) -> list[Example]:
    from pymatgen.core import Structure

    from matserve.structures import System

    examples = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's notes on rounded fractional coordinates
        for row in rows.itertuples():
            system = System.from_pymatgen(Structure.from_str(row.cif, fmt="cif"))
            src, dst, vectors = nearest_neighbor_edges(system)
            examples.append(Example(row.material_id, system.numbers, src.astype(np.int64), dst.astype(np.int64),
                                    vectors.astype(np.float32), float(row.target)))
    return examples


def load_split(split: str, target: str = "formation_energy_per_atom", limit: int | None = None,
               seed: int = 0) -> list[Example]:
    """Examples of one split (a seeded subset of ``limit`` when given), cached on disk."""
    name = f"{target}_{split}_{limit}_{seed}.pt" if limit else f"{target}_{split}_all.pt"
    cache = CACHE_DIR / name
    if cache.exists():
        return [Example(*(getattr(e, f) for f in ("material_id", "numbers", "edge_src", "edge_dst",
                                                  "bond_vectors", "target")))
                for e in torch.load(cache, weights_only=False)]
    rows = labelled_split(target)
    rows = rows[rows.split == split]
    if limit is not None and limit < len(rows):
        rows = rows.sample(n=limit, random_state=seed)
    started = time.time()
    examples = build_examples(rows)
    print(f"built {len(examples)} {split} graphs in {time.time() - started:.0f} s", flush=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(examples, cache)
    return examples


def collate(examples: list[Example]) -> tuple[GraphBatch, torch.Tensor]:
    graphs, features = zip(*(example.prepare() for example in examples))
    batch = pack_graphs(list(graphs), list(features))
    return batch, torch.tensor([example.target for example in examples], dtype=torch.float32)
