"""The mfd model's heat capacity against Alexandria's PBE phonons (matcalc benchmark data).

``heat_capacity`` in ``alexandria-binary-pbe-phonon-2025.1.json.gz`` is phonopy's Cv at 300 K
in J/(K·mol) per mole of the *given cell*: BaO2 (3 atoms) has 65.7, about 3 × 2.6 kB × R.
So per atom in kB it is ``heat_capacity / (R × atoms in the cell)``, the unit of ``ml_Cv``.

    .venv/bin/python -m bench.mfd_alexandria [--count 200] [--max-atoms 10] [--smallest] [--out rows.jsonl]

Prints the mean absolute error of ml_Cv (kB/atom) over the sample, the same for the
constant Dulong–Petit guess (3 kB/atom) as a baseline, and seconds per structure.
The sample is the first ``--count`` entries of a seeded shuffle (``--seed``) with at most
``--max-atoms`` atoms; with ``--smallest`` the shuffled entries are taken smallest cell first
(a stable sort by atom count), so a few hundred finish on a CPU. ``--out`` writes one JSON
line per structure as it finishes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from matserve.forcefields import load_forcefield
from matserve.properties.phonons import GAS_CONSTANT, vibrational_properties
from matserve.structures import System
from training.shared_data import SHARED_DATA

DATA = SHARED_DATA / "matcalc" / "alexandria-binary-pbe-phonon-2025.1.json.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--max-atoms", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smallest", action="store_true", help="smallest cells first (after the seeded shuffle)")
    parser.add_argument("--out", type=Path, help="write one JSON line per structure here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    entries = json.load(gzip.open(DATA))
    random.Random(args.seed).shuffle(entries)
    if args.smallest:
        entries.sort(key=lambda entry: len(entry["structure"]["sites"]))  # stable: the shuffle orders ties
    rows = args.out.open("w") if args.out else None
    forcefield = load_forcefield("chgnet")
    reference, predicted, seconds = [], [], []
    for entry in entries:
        structure = Structure.from_dict(entry["structure"])
        if len(structure) > args.max_atoms or max(structure.atomic_numbers) > 94:
            continue
        start = time.perf_counter()
        result = vibrational_properties(forcefield, System.from_pymatgen(structure))
        seconds.append(time.perf_counter() - start)
        reference.append(entry["heat_capacity"] / (GAS_CONSTANT * len(structure)))
        predicted.append(result.heat_capacity)
        if rows:
            rows.write(json.dumps({"formula": structure.composition.formula, "atoms": len(structure),
                                   "reference_kb": reference[-1], "mfd_kb": predicted[-1],
                                   "seconds": seconds[-1]}) + "\n")
            rows.flush()
        if len(reference) % 20 == 0:
            so_far = np.abs(np.array(predicted) - np.array(reference)).mean()
            print(f"  {len(reference)} done, MAE so far {so_far:.4f} kB/atom", flush=True)
        if len(reference) == args.count:
            break
    reference, predicted = np.array(reference), np.array(predicted)
    error = np.abs(predicted - reference)
    print(f"{len(reference)} Alexandria binaries (<= {args.max_atoms} atoms), Cv at 300 K in kB/atom")
    print(f"mfd (CHGNet phonons): MAE {error.mean():.4f}, median {np.median(error):.4f}, "
          f"max {error.max():.3f}; {np.mean(seconds):.2f} s per structure (max {np.max(seconds):.1f})")
    print(f"Dulong-Petit 3 kB/atom: MAE {np.abs(3 - reference).mean():.4f}; "
          f"ratio (baseline / mfd) {np.abs(3 - reference).mean() / error.mean():.1f}")
    print(f"in J/(K mol atoms): MAE {error.mean() * GAS_CONSTANT:.3f}")


if __name__ == "__main__":
    main()
