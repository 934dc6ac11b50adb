"""Force fields behind one interface; `load_forcefield` picks one by name."""

from __future__ import annotations

from matserve.forcefields.base import (
    EV_PER_A3_TO_KBAR,
    ForceField,
    ForceFieldOutput,
    UnsupportedElementError,
    WeightsInfo,
)

FORCEFIELDS = ("chgnet", "sevennet")


def load_forcefield(name: str = "chgnet", device: str = "cpu", model_path: str = "") -> ForceField:
    if name == "chgnet":
        from matserve.forcefields.chgnet import CHGNetForceField

        return CHGNetForceField(device=device)
    if name == "sevennet":
        from matserve.forcefields.sevennet import SevenNetForceField

        return SevenNetForceField(device=device)
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


def weights_info(name: str = "chgnet", model_path: str = "") -> WeightsInfo:
    """Provenance of a force field's weights without loading the model (for /v1/metadata)."""
    from matserve.forcefields.base import sha256_file

    if name == "chgnet":
        from matserve.forcefields.chgnet import checkpoint_path

        path = checkpoint_path()
        return WeightsInfo("CHGNet 0.3.0", path.name, sha256_file(path))
    if name == "sevennet":
        from matserve.forcefields.sevennet import checkpoint_path as sevennet_checkpoint

        path = sevennet_checkpoint()
        return WeightsInfo("SevenNet-0", path.name, sha256_file(path))
    raise ValueError(f"unknown force field {name!r}; choose one of {FORCEFIELDS}")


def supported_numbers(name: str = "chgnet", model_path: str = "") -> frozenset[int]:
    """Atomic numbers a force field covers, without loading it (for validating requests)."""
    if name == "chgnet":
        from matserve.forcefields.chgnet import CHGNetForceField

        return CHGNetForceField.supported_numbers
    if name == "sevennet":
        from matserve.forcefields.sevennet import sevennet_numbers

        return sevennet_numbers()
    raise ValueError(f"unknown force field {name!r}; choose one of {FORCEFIELDS}")
