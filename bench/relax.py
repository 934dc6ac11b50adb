"""Batched relaxation: matserve's /v1/infer against ASE one by one and torch-sim's batched FIRE.

64 Materials Project crystals (1–32 atoms), rattled 0.05 Å and strained ±3 %,
relaxed with cell optimisation to fmax 0.05 eV/Å with CHGNet 0.3.0 by
  (a) one request to a running matserve (started here unless --url is given),
  (b) ASE FIRE + CHGNetCalculator + FrechetCellFilter, one structure after another,
  (c) torch-sim's batched Frechet-cell FIRE with in-flight batching on the same model, called
      through CHGNet's own forward (what a plain torch-sim wrapper does) and through matserve's
      one-backward-pass adapter,
  (d) matserve's Relaxer in this process on the same adapter and atom budget, with each of
      FIRE and FIRE2 and each of the unit-cell and Frechet cell filters (its total optimiser
      steps count force evaluations; FIRE2 spends one more after each uphill step).
Prints structures/s, the ratios, µs per atom per step, residual forces and stresses,
and how far the final energies of (a) and (c) are from ASE's.

    .venv/bin/python -m bench.relax [--count 64] [--url http://127.0.0.1:8000] [--skip-torchsim]
        [--skip-service] [--skip-ase] [--skip-relaxer] [--atom-budget N]

``--count 4 --skip-service --skip-ase --skip-torchsim`` is a quick look at (d) alone.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import httpx
import numpy as np
import torch

from bench.structures import mp_crystals, perturbed

warnings.filterwarnings("ignore")
FMAX = 0.05
EV_PER_A3_TO_KBAR = 1602.1766208


@dataclass
class Outcome:
    name: str
    seconds: float
    energies_per_atom: np.ndarray
    steps: np.ndarray
    max_force: np.ndarray
    max_stress_kbar: np.ndarray
    n_atoms: np.ndarray

    @property
    def per_second(self) -> float:
        return len(self.steps) / self.seconds

    @property
    def us_per_atom_step(self) -> float:
        return self.seconds * 1e6 / float((self.n_atoms * np.maximum(self.steps, 1)).sum())


def start_service() -> tuple[subprocess.Popen, str]:
    from matserve.tritonserver import free_port

    port = free_port()
    env = {**os.environ, "MATSERVE_PORT": str(port), "MATSERVE_DATA_DIR": tempfile.mkdtemp(prefix="matserve-bench-")}
    process = subprocess.Popen([sys.executable, "-m", "matserve.cli", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health/ready", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("matserve did not become ready")


def run_service(structures, url: str, pressure_kbar: float) -> Outcome:
    body = {
        "atoms": [{"coord": a.positions.reshape(-1).tolist(), "numbers": a.numbers.tolist(),
                   "cell": np.array(a.cell).reshape(-1).tolist()} for a in structures],
        "opttol": FMAX, "opttol_pressure": pressure_kbar, "cellopt": True,
    }
    httpx.post(url + "/v1/infer", json={**body, "atoms": body["atoms"][:1], "max_steps": 0}, timeout=600)  # warm
    start = time.perf_counter()
    response = httpx.post(url + "/v1/infer", json=body, timeout=3600)
    seconds = time.perf_counter() - start
    response.raise_for_status()
    results = response.json()["atoms"]
    n_atoms = np.array([len(a) for a in structures])
    return Outcome(
        "matserve /v1/infer", seconds,
        np.array([r["energy"] for r in results]) / n_atoms,
        np.array([r["optimizer_nsteps"] for r in results]),
        np.array([np.linalg.norm(np.reshape(r["forces"], (-1, 3)), axis=1).max() for r in results]),
        np.array([np.abs(r["stress"]).max() for r in results]),
        n_atoms,
    )


def run_ase(structures, model) -> Outcome:
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from chgnet.model.dynamics import CHGNetCalculator

    calculator = CHGNetCalculator(model=model)
    warm = structures[0].copy()
    warm.calc = calculator
    warm.get_potential_energy()
    energies, steps, forces, stresses = [], [], [], []
    start = time.perf_counter()
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calculator
        optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
        optimizer.run(fmax=FMAX, steps=2000)
        energies.append(atoms.get_potential_energy() / len(atoms))
        steps.append(optimizer.nsteps)
        forces.append(np.linalg.norm(atoms.get_forces(), axis=1).max())
        stresses.append(np.abs(atoms.get_stress(voigt=False)).max() * EV_PER_A3_TO_KBAR)
    seconds = time.perf_counter() - start
    return Outcome("ASE FIRE one by one", seconds, np.array(energies), np.array(steps), np.array(forces),
                   np.array(stresses), np.array([len(a) for a in structures]))


def stock_chgnet(forcefield):
    """CHGNet's own forward (forces and stress in two training-style backward passes), as a plain wrapper calls it."""
    from pymatgen.core import Lattice, Structure

    model = forcefield.model

    def evaluate(batch):
        graphs = [model.graph_converter(Structure(Lattice(cell.numpy()), numbers.numpy(), positions.numpy(),
                                                  coords_are_cartesian=True))
                  for positions, numbers, cell in zip(batch.split_atoms(batch.positions.detach()),
                                                      batch.split_atoms(batch.numbers), batch.cells.detach())]
        out = model(graphs, task="efs")
        energy = out["e"].detach().double() * batch.n_atoms
        forces = torch.cat([f.detach() for f in out["f"]]).double()
        stress = torch.stack([s.detach() for s in out["s"]]).double() / 160.21766208  # GPa -> eV/Å³
        return type("Output", (), {"energy": energy, "forces": forces, "stress": stress})

    return evaluate


def run_torchsim(structures, forcefield, atom_budget: int, label: str) -> Outcome:
    import torch_sim as ts
    from torch_sim.models.interface import ModelInterface

    from matserve.structures import Batch

    class CHGNetModel(ModelInterface):
        """torch-sim's model interface over the same CHGNet adapter matserve serves."""

        def __init__(self) -> None:
            super().__init__()
            self._device, self._dtype = torch.device("cpu"), torch.float64
            self._compute_stress, self._compute_forces = True, True
            self._memory_scales_with = "n_atoms"

        def forward(self, state, **kwargs):
            n_atoms = torch.bincount(state.system_idx)
            pbc = torch.ones(len(n_atoms), 3, dtype=torch.bool)
            batch = Batch(state.positions, state.atomic_numbers, state.row_vector_cell, pbc, n_atoms)
            out = forcefield(batch)
            return {"energy": out.energy, "forces": out.forces, "stress": out.stress}

    model = CHGNetModel()
    state = ts.initialize_state([a.copy() for a in structures], device=torch.device("cpu"), dtype=torch.float64)
    batcher = ts.InFlightAutoBatcher(model, memory_scales_with="n_atoms", max_memory_scaler=atom_budget)
    convergence = ts.generate_force_convergence_fn(force_tol=FMAX, include_cell_forces=True)
    start = time.perf_counter()
    final = ts.optimize(state, model, optimizer=ts.frechet_cell_fire, convergence_fn=convergence,
                        autobatcher=batcher, max_steps=2000)
    seconds = time.perf_counter() - start
    out = model(final)
    systems = final.system_idx
    n_atoms = torch.bincount(systems).numpy()
    max_force = np.zeros(len(n_atoms))
    np.maximum.at(max_force, systems.numpy(), torch.linalg.norm(out["forces"], dim=1).numpy())
    steps = np.full(len(n_atoms), -1)  # torch-sim does not report per-structure steps
    return Outcome(f"torch-sim FIRE, {label}", seconds, (out["energy"] / torch.as_tensor(n_atoms)).numpy(), steps,
                   max_force, out["stress"].abs().amax(dim=(1, 2)).numpy() * EV_PER_A3_TO_KBAR, n_atoms)


def run_relaxer(structures, forcefield, atom_budget: int, pressure_kbar: float, optimizer: str,
                cell_filter: str) -> Outcome:
    """matserve's Relaxer in this process (what one worker runs), cell optimisation as the service's."""
    from matserve.relax import RelaxOptions, relax
    from matserve.structures import System

    systems = [System.from_ase(a) for a in structures]
    options = RelaxOptions(fmax=FMAX, pressure_tol_kbar=pressure_kbar, cellopt=True, max_steps=2000,
                           optimizer=optimizer, cell_filter=cell_filter)
    relax(forcefield, systems[:1], RelaxOptions(max_steps=0))  # warm
    start = time.perf_counter()
    results = relax(forcefield, systems, options, atom_budget=atom_budget)
    seconds = time.perf_counter() - start
    n_atoms = np.array([s.n_atoms for s in systems])
    return Outcome(
        f"Relaxer {optimizer}, {cell_filter} cell", seconds,
        np.array([r.energy for r in results]) / n_atoms,
        np.array([r.n_steps for r in results]),
        np.array([np.linalg.norm(r.forces, axis=1).max() for r in results]),
        np.array([np.abs(r.stress).max() * EV_PER_A3_TO_KBAR for r in results]),
        n_atoms,
    )


def report(outcomes: list[Outcome], reference: Outcome, label: str = "ASE") -> None:
    print(f"\n{'method':34s} {'s':>8s} {'struct/s':>9s} {'x ' + label:>7s} {'steps':>7s} {'us/atom/step':>13s} "
          f"{'max F':>7s} {'max |s| kBar':>13s} {'|dE| meV/atom (mean, max) vs ' + label:>34s}")
    for outcome in outcomes:
        steps = int(outcome.steps.sum()) if (outcome.steps >= 0).all() else -1
        per_step = f"{outcome.us_per_atom_step:13.0f}" if steps >= 0 else f"{'n/a':>13s}"
        delta = np.abs(outcome.energies_per_atom - reference.energies_per_atom) * 1000
        print(f"{outcome.name:34s} {outcome.seconds:8.1f} {outcome.per_second:9.3f} "
              f"{outcome.per_second / reference.per_second:7.2f} {steps:7d} {per_step} "
              f"{outcome.max_force.max():7.3f} {np.median(outcome.max_stress_kbar):6.2f} (med) "
              f"{delta.mean():16.2f}, {delta.max():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--url", default="")
    parser.add_argument("--pressure-kbar", type=float, default=5.0,
                        help="matserve's opttol_pressure; ASE's filter at fmax 0.05 stops near 5 kBar")
    parser.add_argument("--skip-torchsim", action="store_true")
    parser.add_argument("--torchsim-model", choices=("stock", "matserve", "both"), default="both",
                        help="torch-sim on CHGNet's own forward, on matserve's one-pass adapter, or both")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-ase", action="store_true", help="then the first row is the reference")
    parser.add_argument("--skip-relaxer", action="store_true", help="no in-process Relaxer rows (FIRE/FIRE2 x filters)")
    parser.add_argument("--atom-budget", type=int, default=0,
                        help="torch-sim's and the Relaxer's atoms per call; 0: the service's batch size (no cap "
                             "with --skip-service)")
    args = parser.parse_args()
    structures = [perturbed(a, seed=i) for i, a in enumerate(mp_crystals(args.count, seed=0))]
    print(f"{len(structures)} MP crystals, {sum(len(a) for a in structures)} atoms, "
          f"{min(len(a) for a in structures)}-{max(len(a) for a in structures)} per structure; "
          f"torch threads {torch.get_num_threads()}")

    outcomes: list[Outcome] = []
    batch_size = args.atom_budget
    if not args.skip_service:
        process, url = (None, args.url) if args.url else start_service()
        try:
            outcomes.append(run_service(structures, url, args.pressure_kbar))
            batch_size = batch_size or httpx.get(url + "/v1/status").json()["workers"][0]["batch_size"]
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)

    from matserve.forcefields import load_forcefield
    from matserve.relax import CELL_FILTERS, OPTIMIZERS

    forcefield = load_forcefield("chgnet")
    if not args.skip_ase:
        outcomes.insert(0, run_ase(structures, forcefield.model))
    if not args.skip_torchsim:
        budget = batch_size or sum(len(a) for a in structures)
        if args.torchsim_model in ("stock", "both"):
            outcomes.append(run_torchsim(structures, stock_chgnet(forcefield), budget, "CHGNet forward"))
        if args.torchsim_model in ("matserve", "both"):
            outcomes.append(run_torchsim(structures, forcefield, budget, "matserve adapter"))
    if not args.skip_relaxer:
        for optimizer, cell_filter in itertools.product(OPTIMIZERS, CELL_FILTERS):
            outcomes.append(run_relaxer(structures, forcefield, batch_size, args.pressure_kbar, optimizer, cell_filter))
    if not outcomes:
        return
    report(outcomes, outcomes[0], "ASE" if not args.skip_ase else "ref")


if __name__ == "__main__":
    main()
