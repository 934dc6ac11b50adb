"""Force fields behind one interface; the registry (``registry.py``) names them.

The registry and its functions import no torch, so ``matserve.settings`` can read the
names; the interface types (``ForceField`` and friends) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matserve.forcefields.registry import (
    FORCEFIELDS,
    REGISTRY,
    ForceFieldEntry,
    entry,
    load_forcefield,
    supported_numbers,
    weights_info,
)

if TYPE_CHECKING:
    from matserve.forcefields.base import (
        EV_PER_A3_TO_KBAR,
        ForceField,
        ForceFieldOutput,
    )

_FROM_BASE = ("EV_PER_A3_TO_KBAR", "ForceField", "ForceFieldOutput")


def __getattr__(name: str):
    if name in _FROM_BASE:
        from matserve.forcefields import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EV_PER_A3_TO_KBAR",
    "FORCEFIELDS",
    "REGISTRY",
    "ForceField",
    "ForceFieldEntry",
    "ForceFieldOutput",
    "entry",
    "load_forcefield",
    "supported_numbers",
    "weights_info",
]
