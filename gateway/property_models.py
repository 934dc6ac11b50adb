"""The property-model registry: data in ``property_models.json``, one entry per model.

Adding a model is an entry here plus a Triton model that takes POSITIONS, NUMBERS
and CELL and returns the listed outputs and a DESCRIPTION string. ``elements`` names
the function (``module:function``) that lists the atomic numbers the model takes, or
``forcefield`` for a model that computes with the served force field.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from matserve.contract import element_problem
from matserve.forcefields import supported_numbers as forcefield_numbers
from matserve.forcefields.registry import forcefield_label

REGISTRY_FILE = Path(__file__).with_name("property_models.json")
FORCEFIELD_ELEMENTS = "forcefield"


@dataclass(frozen=True)
class PropertyModel:
    name: str
    triton_model: str
    citation: str
    outputs: dict[str, str]  # Triton output name -> response field
    elements: str  # "module:function" listing the atomic numbers it takes, or FORCEFIELD_ELEMENTS
    neighbour_cutoff: float | None = None  # Å: every atom needs another this close (graph models)

    def element_problem(self, numbers: list[int], forcefield: str) -> str | None:
        """Why this model cannot take a structure of these atomic numbers, naming the model (None: it can)."""
        if self.elements == FORCEFIELD_ELEMENTS:
            label = f"{self.name} computes with the {forcefield_label(forcefield)}, which"
            return element_problem(label, numbers, forcefield_numbers(forcefield))
        module, function = self.elements.split(":")
        return element_problem(self.name, numbers, set(getattr(importlib.import_module(module), function)()))


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, PropertyModel]:
    entries = json.loads(path.read_text())
    return {entry["name"]: PropertyModel(**entry) for entry in entries}
