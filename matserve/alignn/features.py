"""ALIGNN's atom input features: the 92-number CGCNN embedding of each element.

Published ALIGNN checkpoints (``atom_features: "cgcnn"``) read these exact numbers, which
jarvis-tools ships. We keep a copy in ``cgcnn_features.json`` so the service needs no
jarvis-tools at run time; ``python -m matserve.alignn.features`` regenerates it from
jarvis-tools, and a test checks the copy against it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from matserve.contract import check_elements

TABLE_FILE = Path(__file__).with_name("cgcnn_features.json")
N_FEATURES = 92
MAX_ATOMIC_NUMBER = 100  # CGCNN's table covers H..Fm; jarvis-tools pads beyond with a stand-in


@lru_cache(maxsize=1)
def feature_table() -> dict[int, list[float]]:
    """Atomic number -> its 92 CGCNN features."""
    return {int(z): values for z, values in json.loads(TABLE_FILE.read_text()).items()}


def supported_numbers() -> set[int]:
    return set(feature_table())


def atom_features(numbers: np.ndarray) -> torch.Tensor:
    """(n_atoms, 92) float32 features of the given atomic numbers."""
    table = feature_table()
    check_elements("ALIGNN", numbers, set(table))  # no CGCNN features: ALIGNN cannot embed it
    return torch.tensor(np.array([table[int(z)] for z in numbers]), dtype=torch.float32)


def table_from_jarvis() -> dict[int, list[float]]:
    """The table as jarvis-tools gives it (the reference; needs the alignn extras installed)."""
    from ase.data import chemical_symbols
    from jarvis.core.specie import get_node_attributes

    return {z: [float(v) for v in get_node_attributes(chemical_symbols[z], atom_features="cgcnn")]
            for z in range(1, MAX_ATOMIC_NUMBER + 1)}


if __name__ == "__main__":
    TABLE_FILE.write_text(json.dumps(table_from_jarvis()))
    print(f"wrote {len(json.loads(TABLE_FILE.read_text()))} elements to {TABLE_FILE}")
