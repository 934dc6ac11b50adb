"""ALIGNN formation energies: matserve's Triton ``alignn`` model against the alignn package's own path.

The same 64 Materials Project crystals and the same weights (the embedded model) through
  (a) the Triton ``alignn`` model (started here on its own), packed into calls of 1, 16 and 64
      structures, graph building included;
  (b) the alignn package's prediction path: its pure-PyTorch graph builder
      (``build_pure_torch_graph``, 8 Å, 12 neighbours) and model (``ALIGNNAtomWisePure`` with the
      official ALIGNN's BatchNorm, see matserve.alignn.reference), batched with its own
      ``batch_torch_graph_pairs`` at the same sizes. Its DGL path does not run with our torch.
Prints structures/s and the ratio (a)/(b) per batch size, and the largest difference in
the predictions. The model is the same (tests/matserve/alignn/test_model.py: 1e-5 on the same
graph); the predictions differ because the graphs do: the package's pure-PyTorch builder keeps
exactly 12 neighbours, while its DGL builder, which the published checkpoints were trained
with, keeps every neighbour tied with the 12th, as matserve does. Needs the alignn package
(requirements-dev.lock).

    .venv/bin/python -m bench.alignn [--count 64]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from bench.structures import mp_crystals
from matserve.alignn.checkpoint import load_checkpoint
from matserve.alignn.reference import reference_model
from matserve.structures import System
from matserve.tritonserver import (find_tritonserver, free_port, render_model_repository,
                                   start_tritonserver)

warnings.filterwarnings("ignore")
BATCH_SIZES = (1, 16, 64)
REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"


async def time_triton(url: str, systems: list[System], batch: int) -> tuple[float, np.ndarray]:
    from gateway.triton_client import TritonClient

    client = TritonClient(url)
    await client.formation_energies(systems[:batch])  # warm
    start = time.perf_counter()
    energies = []
    for i in range(0, len(systems), batch):
        energies += await client.formation_energies(systems[i:i + batch])
    seconds = time.perf_counter() - start
    await client.close()
    return len(systems) / seconds, np.array(energies)


def time_package(model: torch.nn.Module, systems: list[System], batch: int) -> tuple[float, np.ndarray]:
    from alignn.torch_graph_builder import batch_torch_graph_pairs, build_pure_torch_graph
    from jarvis.core.atoms import Atoms as JarvisAtoms

    def graphs(chunk):
        return [build_pure_torch_graph(JarvisAtoms(lattice_mat=s.cell, coords=s.positions, cartesian=True,
                                                   elements=[str(e) for e in s.to_pymatgen().species]),
                                       two_body_cutoff=8.0, max_neighbors=12) for s in chunk]

    start = time.perf_counter()
    energies = []
    with torch.no_grad():
        for i in range(0, len(systems), batch):
            g, lg = batch_torch_graph_pairs(graphs(systems[i:i + batch]))
            energies += model((g, lg, None))["out"].reshape(-1).tolist()
    seconds = time.perf_counter() - start
    return len(systems) / seconds, np.array(energies)


def start_triton(work: Path):
    installation = find_tritonserver("", work)
    repository = work / "source"
    repository.mkdir()
    shutil.copytree(REPOSITORY / "alignn", repository / "alignn")
    rendered = render_model_repository(repository, work / "model_repository", "cpu")
    grpc_port = free_port()
    process = start_tritonserver(installation, rendered, grpc_port, free_port())
    return process, f"127.0.0.1:{grpc_port}"


async def wait_ready(url: str) -> None:
    from gateway.triton_client import ALIGNN_MODEL, TritonClient

    client = TritonClient(url)
    for _ in range(600):
        if await client.ready_models([ALIGNN_MODEL]):
            await client.close()
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("Triton did not load the alignn model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=64)
    args = parser.parse_args()
    systems = [System.from_ase(atoms) for atoms in mp_crystals(args.count)]
    print(f"{len(systems)} MP crystals, {sum(s.n_atoms for s in systems)} atoms; torch threads {torch.get_num_threads()}")
    reference = reference_model(load_checkpoint())
    work = Path(tempfile.mkdtemp(prefix="matserve-bench-alignn-"))
    process, url = start_triton(work)
    try:
        asyncio.run(wait_ready(url))
        print(f"{'batch':>5} {'triton /s':>10} {'alignn pkg /s':>14} {'ratio':>6} {'max |ΔE| eV/atom':>17}")
        for batch in BATCH_SIZES:
            ours, ours_e = asyncio.run(time_triton(url, systems, batch))
            theirs, theirs_e = time_package(reference, systems, batch)
            print(f"{batch:>5} {ours:>10.1f} {theirs:>14.1f} {ours / theirs:>6.2f} "
                  f"{np.abs(ours_e - theirs_e).max():>17.2e}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
