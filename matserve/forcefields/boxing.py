"""Molecules for periodic-only models: put the molecule in a box wide enough that images never interact."""

from __future__ import annotations

import numpy as np


def molecule_box(positions: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (centred positions, cubic cell) with more than ``cutoff`` Å of vacuum between images."""
    extent = positions.max(axis=0) - positions.min(axis=0)
    side = float(extent.max()) + cutoff + 2.0
    centred = positions - positions.mean(axis=0) + side / 2
    return centred, np.eye(3) * side
