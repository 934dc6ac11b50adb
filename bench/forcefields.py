"""Force fields side by side: accuracy against DFT on real WBM data, and CPU cost per atom per step.

For every force field that ships its weights (``chgnet``, ``sevennet``, ``sevennet-l3i5``,
``sevennet-mf-0`` with its PBE head; ``mace`` needs a user's model file and is left out), in one run:
  (a) the mean absolute error of the energy per atom against DFT (PBE/PBE+U VASP energies, both
      uncorrected and with the MP2020 corrections: CHGNet learnt the corrected ones, SevenNet the
      uncorrected) on a seeded subset of the WBM structures in ../shared/data/matcalc
      (``wbm-random-pbe54-equilibrium-2025.1``: DFT-relaxed structures, one single point each, so
      no relaxation is involved); the subset holds only structures every model covers;
  (b) CPU µs per atom per step: single points (energy, forces, stress: what one relaxation step
      costs) on bench/relax.py's 64 rattled and strained MP crystals, packed into one batch, timed
      over a few calls after a warm-up call, as process CPU time and as wall time, on one torch
      thread by default (on a shared machine more threads mostly measure contention);
  (c) what the D3(BJ) option adds to CHGNet's cost, on a few of those crystals, at the default
      95 Bohr pair cutoff and at 40 Bohr.
Beside them, each model's published Matbench Discovery F1 (not measured here).

Formation energies are not reported: the WBM files carry DFT formation energies but not the
elemental reference structures, so a model's own formation energy cannot be formed; with the DFT
references its error per atom would equal the energy error above. Bulk moduli (MP elasticity set)
are not measured either.

    .venv/bin/python -m bench.forcefields [--count 200] [--seed 0] [--speed-count 64] [--repeats 2]
        [--d3-count 4] [--threads 1] [--models chgnet,sevennet,sevennet-l3i5,sevennet-mf-0] [--atom-budget 2048]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time
import warnings

import numpy as np
import torch
from pymatgen.core import Structure

from bench.structures import mp_crystals, perturbed
from matserve.forcefields import ForceField, load_forcefield, supported_numbers
from matserve.forcefields.dispersion import WithDispersion
from matserve.forcefields.registry import Dispersion
from matserve.structures import System, pack
from training.shared_data import SHARED_DATA

warnings.filterwarnings("ignore")
WBM = SHARED_DATA / "matcalc" / "wbm-random-pbe54-equilibrium-2025.1_v432KB.json.gz"
BOHR = 0.52917721067  # Å
MODELS = ("chgnet", "sevennet", "sevennet-l3i5", "sevennet-mf-0")  # mace ships no weights
# Matbench Discovery F1 (full WBM test set, as published on its leaderboard); MF-0 is not listed there.
PUBLISHED_F1 = {"chgnet": "0.613", "sevennet": "0.724", "sevennet-l3i5": "0.760", "sevennet-mf-0": "unknown"}


def wbm_subset(count: int, seed: int, numbers: frozenset[int]) -> tuple[list[System], np.ndarray, np.ndarray]:
    """``count`` WBM structures drawn with ``seed`` among those made only of ``numbers``: systems and their
    DFT energies per atom (eV/atom), uncorrected and with the MP2020 corrections."""
    with gzip.open(WBM, "rt") as handle:
        rows = json.load(handle)
    random.Random(seed).shuffle(rows)
    systems, raw, corrected = [], [], []
    for row in rows:
        structure = Structure.from_dict(row["structure"])
        if not set(structure.atomic_numbers) <= numbers:
            continue
        systems.append(System.from_pymatgen(structure))
        raw.append(row["energy"] / len(structure))
        corrected.append(row["corrected_energy"] / len(structure))
        if len(systems) == count:
            break
    return systems, np.array(raw), np.array(corrected)


def chunks(systems: list[System], atom_budget: int) -> list[list[System]]:
    """Consecutive groups of at most ``atom_budget`` atoms (a larger structure goes alone)."""
    groups: list[list[System]] = [[]]
    for system in systems:
        if groups[-1] and sum(s.n_atoms for s in groups[-1]) + system.n_atoms > atom_budget:
            groups.append([])
        groups[-1].append(system)
    return groups


def energies_per_atom(forcefield: ForceField, systems: list[System], atom_budget: int) -> np.ndarray:
    out = []
    for group in chunks(systems, atom_budget):
        energy = forcefield(pack(group), compute_stress=False).energy
        out.extend((energy / torch.tensor([s.n_atoms for s in group], dtype=energy.dtype)).tolist())
    return np.array(out)


def us_per_atom_step(forcefield: ForceField, systems: list[System], repeats: int) -> tuple[float, float]:
    """(wall, CPU) µs per atom per single point (energy, forces, stress) on ``systems`` in one batch."""
    batch = pack(systems)
    forcefield(pack(systems[:1]))  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        forcefield(batch)
    atoms = repeats * int(batch.n_atoms.sum())
    return (time.perf_counter() - wall) * 1e6 / atoms, (time.process_time() - cpu) * 1e6 / atoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="WBM structures in the seeded subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-count", type=int, default=64, help="bench/relax.py's MP crystals timed")
    parser.add_argument("--repeats", type=int, default=2, help="timed single-point calls per model")
    parser.add_argument("--d3-count", type=int, default=4,
                        help="of those crystals, how many CHGNet + D3(BJ) is timed on, at the default 95 Bohr "
                             "cutoff and at 40 Bohr (one call each; 0: none)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: torch's default); one keeps a shared machine's load from "
                             "inflating the CPU time by thread contention")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--atom-budget", type=int, default=2048, help="atoms per call in the accuracy pass")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    covered = frozenset.intersection(*(supported_numbers(m) for m in models))
    systems, raw, corrected = wbm_subset(args.count, args.seed, covered)
    speed = [System.from_ase(perturbed(a, seed=i)) for i, a in enumerate(mp_crystals(args.speed_count, seed=0))]
    print(f"WBM (pbe54, DFT-relaxed): {len(systems)} structures drawn with seed {args.seed}, "
          f"{sum(s.n_atoms for s in systems)} atoms; speed: {len(speed)} MP crystals of bench/relax.py, "
          f"{sum(s.n_atoms for s in speed)} atoms, {args.repeats} timed single points (energy, forces, stress); "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    rows = []
    for name in models:
        started = time.perf_counter()
        forcefield = load_forcefield(name, dispersion=Dispersion())  # the bare model, whatever the environment
        predicted = energies_per_atom(forcefield, systems, args.atom_budget)
        wall, cpu = us_per_atom_step(forcefield, speed, args.repeats)
        rows.append((forcefield.weights.name, PUBLISHED_F1.get(name, "unknown"),
                     f"{1000 * np.abs(predicted - raw).mean():.1f}", f"{1000 * np.abs(predicted - corrected).mean():.1f}",
                     f"{cpu:.0f}", f"{wall:.0f}", time.perf_counter() - started))
        if name == "chgnet" and args.d3_count:  # what the dispersion option costs, at two pair cutoffs
            for cutoff_bohr in (95.0, 40.0):
                started = time.perf_counter()
                d3 = WithDispersion(forcefield, Dispersion("d3", cutoff=cutoff_bohr * BOHR))
                wall, cpu = us_per_atom_step(d3, speed[:args.d3_count], 1)
                rows.append((f"{d3.weights.name}, {cutoff_bohr:.0f} Bohr*", "–", "–", "–", f"{cpu:.0f}", f"{wall:.0f}",
                             time.perf_counter() - started))

    print()
    header = ("model", "MBD F1", "E MAE", "E MAE", "CPU", "wall", "run")
    units = ("", "(publ.)", "uncorr.", "MP2020", "µs/atom/step", "µs/atom/step", "s")
    for line in (header, units):
        print(f"{line[0]:<36} {line[1]:>8} {line[2]:>9} {line[3]:>9} {line[4]:>13} {line[5]:>13} {line[6]:>5}")
    for title, f1, mae_raw, mae_corrected, cpu, wall, seconds in rows:
        print(f"{title:<36} {f1:>8} {mae_raw:>9} {mae_corrected:>9} {cpu:>13} {wall:>13} {seconds:5.0f}")
    print("E MAE: meV/atom against the DFT energy per atom, uncorrected and with MP2020 corrections "
          "(CHGNet was trained on corrected MPtrj energies, SevenNet on uncorrected ones)")
    if args.d3_count:
        print(f"* timed on the first {args.d3_count} of those crystals, one call; D3 adds nothing to a PBE "
              f"energy's agreement with PBE, so no accuracy is given")


if __name__ == "__main__":
    main()
