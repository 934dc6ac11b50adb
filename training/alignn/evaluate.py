"""Print the test MAE of an ALIGNN formation-energy checkpoint on mp_cgcnn_36k's held-out split.

    python -m training.alignn.evaluate [--checkpoint FOLDER]   (default: the embedded model)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from matserve.alignn.checkpoint import EMBEDDED_DIR, load_checkpoint
from training.alignn.dataset import collate, load_split


@torch.no_grad()
def test_errors(checkpoint: Path, split: str = "test") -> np.ndarray:
    model = load_checkpoint(checkpoint)
    examples = load_split(split)
    errors = []
    for start in range(0, len(examples), 64):
        batch, targets = collate(examples[start:start + 64])
        errors.append((model(batch) - targets).abs().numpy())
    return np.concatenate(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=EMBEDDED_DIR)
    parser.add_argument("--split", default="test", choices=("val", "test"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    errors = test_errors(args.checkpoint, args.split)
    print(f"{args.split} split: {len(errors)} crystals, formation energy MAE {errors.mean():.4f} eV/atom "
          f"(median {np.median(errors):.4f}; {np.mean(errors > 0.1) * 100:.1f} % above 0.1 eV/atom)")


if __name__ == "__main__":
    main()
