"""The property-model registry: data in ``property_models.json``, one entry per model.

Adding a model is an entry here plus a Triton model that takes POSITIONS, NUMBERS
and CELL and returns the listed outputs and a DESCRIPTION string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REGISTRY_FILE = Path(__file__).with_name("property_models.json")


@dataclass(frozen=True)
class PropertyModel:
    name: str
    triton_model: str
    citation: str
    outputs: dict[str, str]  # Triton output name -> response field
    neighbour_cutoff: float | None = None  # Å: every atom needs another this close (graph models)


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, PropertyModel]:
    entries = json.loads(path.read_text())
    return {entry["name"]: PropertyModel(**entry) for entry in entries}
