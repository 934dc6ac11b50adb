"""Formation energy per atom of many crystals in one ALIGNN pass, as the Triton ``alignn`` model runs it.

Inputs are packed structures (``matserve.contract``): one from the property API, many from
the generator route.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from matserve.alignn.checkpoint import EMBEDDED_DIR, load_checkpoint
from matserve.alignn.features import atom_features
from matserve.alignn.graph import build_graph
from matserve.alignn.model import pack_graphs
from matserve.contract import InvalidInput, decode_structures
from matserve.structures import System


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
            except InvalidInput as error:
                where = f"structure {index}: " if len(systems) > 1 else ""
                raise InvalidInput(f"{where}{error}", error.field) from error
        batch = pack_graphs(graphs, features).to(self.device)
        return self.model(batch).double().cpu().numpy().reshape(-1)

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        energies = self.predict(decode_structures(inputs))
        return {"FORMATION_ENERGY": energies,
                "DESCRIPTION": np.array([self.description.encode()], dtype=object)}
