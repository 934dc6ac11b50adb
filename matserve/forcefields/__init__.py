"""Force fields behind one interface; `load_forcefield` picks one by name."""

from __future__ import annotations

from matserve.forcefields.base import (
    EV_PER_A3_TO_KBAR,
    ForceField,
    ForceFieldOutput,
    UnsupportedElementError,
    WeightsInfo,
)

FORCEFIELDS = ("chgnet", "sevennet", "mace")


def load_forcefield(name: str = "chgnet", device: str = "cpu", model_path: str = "") -> ForceField:
    if name == "chgnet":
        from matserve.forcefields.chgnet import CHGNetForceField

        return CHGNetForceField(device=device)
    if name == "sevennet":
        from matserve.forcefields.sevennet import SevenNetForceField

        return SevenNetForceField(device=device)
    if name == "mace":
        from matserve.forcefields.mace import MACEForceField

        return MACEForceField(model_path, device=device)
    raise ValueError(f"unknown force field {name!r}; choose one of {FORCEFIELDS}")


__all__ = [
    "EV_PER_A3_TO_KBAR",
    "FORCEFIELDS",
    "ForceField",
    "ForceFieldOutput",
    "UnsupportedElementError",
    "WeightsInfo",
    "load_forcefield",
]
