"""mp_cgcnn_36k as plain tensors for the GPU machine, which has no pymatgen: built here, graphs built there.

    python -m bench.device.corpus [--out .matserve/device/mp_corpus.pt] [--per-split N]

The file holds every crystal's Cartesian positions (float64, Å), cell, atomic numbers, target and
split, concatenated with a count per crystal (~26 MB for all 35,670). Graphs would not fit the
64 MiB a device call carries (≈14 bonds an atom, 100+ MB), so the runner builds them there with
``matserve.alignn.neighbours``, which gives exactly the graphs training here uses.
"""

from __future__ import annotations

import argparse
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

from matserve.alignn.graph import line_graph
from matserve.alignn.neighbours import k_nearest_edges
from training.alignn.dataset import Example, labelled_split

DEFAULT_PATH = Path(".matserve") / "device" / "mp_corpus.pt"
SPLITS = ("train", "val", "test")


def parse_cif(cif: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions, numbers, cell) as ``matserve.structures.System.from_pymatgen`` reads them."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's notes on rounded fractional coordinates
        structure = Structure.from_str(cif, fmt="cif")
    return structure.cart_coords, np.asarray(structure.atomic_numbers), structure.lattice.matrix


def build_corpus(per_split: int | None = None, seed: int = 0, workers: int = 1) -> dict:
    """Every crystal of the three splits (or a seeded ``per_split`` of each), as tensors."""
    rows = labelled_split()
    if per_split:
        rows = rows.groupby("split", group_keys=False).sample(n=per_split, random_state=seed)
    rows = rows[rows.split.isin(SPLITS)]
    with Pool(workers) as pool:
        parsed = pool.map(parse_cif, rows.cif, chunksize=64)
    positions, numbers, cells = zip(*parsed)
    return {
        "material_id": list(rows.material_id),
        "split": torch.tensor([SPLITS.index(s) for s in rows.split], dtype=torch.int8),
        "target": torch.tensor(rows.target.to_numpy(), dtype=torch.float64),
        "n_atoms": torch.tensor([len(n) for n in numbers], dtype=torch.int32),
        "positions": torch.tensor(np.concatenate(positions), dtype=torch.float64),
        "numbers": torch.tensor(np.concatenate(numbers), dtype=torch.uint8),
        "cells": torch.tensor(np.stack(cells), dtype=torch.float64),
    }


def crystals(corpus: dict, split: str) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    """(material id, positions, numbers, cell, target) of each crystal of one split."""
    starts = np.concatenate([[0], np.cumsum(corpus["n_atoms"].numpy())])
    wanted = np.flatnonzero(corpus["split"].numpy() == SPLITS.index(split))
    return [(corpus["material_id"][i], corpus["positions"][starts[i]:starts[i + 1]],
             corpus["numbers"][starts[i]:starts[i + 1]].long(), corpus["cells"][i], float(corpus["target"][i]))
            for i in wanted]


def example(crystal: tuple, device: str = "cpu") -> Example:
    """One crystal's ALIGNN graph, its bonds found on ``device``; kept on the CPU for batching."""
    material_id, positions, numbers, cell, target = crystal
    edges = k_nearest_edges(positions.to(device), cell.to(device), torch.ones(3, dtype=torch.bool))
    return Example(material_id, numbers.numpy(), edges.src.cpu().numpy(), edges.dst.cpu().numpy(),
                   edges.vectors.cpu().numpy().astype(np.float32), target)


def _example_with_angles(crystal: tuple) -> Example:
    """In a pool worker: the graph and its line graph, as numpy arrays (tensors would each cost the
    parent a file descriptor in transit)."""
    torch.set_num_threads(1)
    built = example(crystal)
    built.angles = line_graph(built.edge_src, built.edge_dst, built.bond_vectors)
    return built


def examples(corpus: dict, split: str, workers: int = 1, device: str = "cpu") -> list[Example]:
    """The split's examples: on the CPU with a pool of ``workers``, or one by one on ``device``."""
    chosen = crystals(corpus, split)
    if device != "cpu":
        return [example(crystal, device) for crystal in chosen]
    if workers <= 1:
        return [example(crystal) for crystal in chosen]
    with Pool(workers) as pool:
        return pool.map(_example_with_angles, chosen, chunksize=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--per-split", type=int, default=0, help="a seeded subset of each split; 0: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    started = time.time()
    corpus = build_corpus(args.per_split or None, args.seed, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(corpus, args.out)
    print(f"{len(corpus['material_id'])} crystals, {len(corpus['numbers'])} atoms in {time.time() - started:.0f} s: "
          f"{args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
