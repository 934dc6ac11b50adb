"""Formation energy per atom of many crystals in one ALIGNN pass, as the Triton ``alignn`` model runs it.

Inputs are either one structure (``CELL``, as the property API sends) or a packed batch
(``CELLS`` and ``N_ATOMS``, as the generator route sends, like the force field's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from matserve.alignn.checkpoint import EMBEDDED_DIR, load_checkpoint
from matserve.alignn.features import UnknownElementError, atom_features
from matserve.alignn.graph import IsolatedAtomError, build_graph
from matserve.alignn.model import pack_graphs
from matserve.structures import System


class InvalidStructureError(ValueError):
    """A structure ALIGNN cannot take (isolated atom, element without features)."""


def systems_from_inputs(inputs: dict[str, np.ndarray]) -> list[System]:
    positions = inputs["POSITIONS"].reshape(-1, 3)
    numbers = inputs["NUMBERS"].reshape(-1)
    if "CELL" in inputs:
        return [System(positions, numbers, inputs["CELL"].reshape(3, 3))]
    counts = inputs["N_ATOMS"].reshape(-1)
    if counts.sum() != len(numbers) or len(counts) != len(inputs["CELLS"]):
        raise InvalidStructureError("N_ATOMS does not match POSITIONS/NUMBERS/CELLS")
    bounds = np.cumsum(counts)[:-1]
    return [System(p, n, c) for p, n, c in zip(np.split(positions, bounds), np.split(numbers, bounds),
                                               inputs["CELLS"].reshape(-1, 3, 3))]


class FormationEnergyModel:
    def __init__(self, checkpoint: str | Path = "", device: str = "cpu"):
        self.checkpoint = Path(checkpoint) if checkpoint else EMBEDDED_DIR
        self.device = device
        self.model = load_checkpoint(self.checkpoint, device)

    @property
    def description(self) -> str:
        origin = "embedded matserve model" if self.checkpoint == EMBEDDED_DIR else f"checkpoint {self.checkpoint}"
        return f"ALIGNN formation energy per atom (eV/atom), {origin}"

    @torch.no_grad()
    def predict(self, systems: list[System]) -> np.ndarray:
        """(n,) formation energies per atom, eV/atom."""
        graphs, features = [], []
        for index, system in enumerate(systems):
            try:
                graphs.append(build_graph(system))
                features.append(atom_features(system.numbers))
            except (IsolatedAtomError, UnknownElementError) as error:
                where = f"structure {index}: " if len(systems) > 1 else ""
                raise InvalidStructureError(f"{where}{error}") from error
        batch = pack_graphs(graphs, features).to(self.device)
        return self.model(batch).double().cpu().numpy().reshape(-1)

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        energies = self.predict(systems_from_inputs(inputs))
        return {"FORMATION_ENERGY": energies,
                "DESCRIPTION": np.array([self.description.encode()], dtype=object)}
