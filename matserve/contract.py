"""What every served model shares with the gateway: one codec for packed structures and one error.

Structures travel between the gateway and the Triton models as five arrays, all atoms of all
structures concatenated with a count per structure (torch-sim's layout, as ``Batch`` holds it
in torch): ``POSITIONS`` (N, 3) Å, ``NUMBERS`` (N,), ``CELLS`` (B, 3, 3) rows are lattice vectors,
``PBC`` (B, 3), ``N_ATOMS`` (B,); the force field also takes ``ACTIVE_MASK`` (N,). The gateway's
Triton client encodes them, every Triton adapter decodes them, here and nowhere else.

``WeightsInfo`` is a model's weights as /v1/metadata reports them; each model says its own.

``InvalidInput`` is the one error for input a model cannot take (a user error, answered 4xx
naming ``field``); every model's own input errors are its subclasses, so the Triton adapters
and the gateway catch this one type.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # structures.py raises InvalidInput: it imports this module, not the other way round
    from matserve.structures import System

STRUCTURE_ARRAYS = ("POSITIONS", "NUMBERS", "CELLS", "PBC", "N_ATOMS")
ACTIVE_MASK = "ACTIVE_MASK"


@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of a model's weights: a name for people, the file, its SHA-256 (None: the file is missing)."""

    name: str
    file: str
    sha256: str | None


@cache
def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_weights(path: Path, name: str) -> WeightsInfo:
    """One weights file's provenance; a configured file that is missing has no checksum."""
    return WeightsInfo(name, path.name, sha256_file(path) if path.is_file() else None)


class InvalidInput(ValueError):
    """Input a model cannot take; ``field`` names the request field it concerns (empty: the whole input)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


class UnsupportedElements(InvalidInput):
    """Atomic numbers outside what ``model`` covers; ``model`` reads as the message's subject."""

    def __init__(self, model: str, numbers: Iterable[int]):
        self.model = model
        self.numbers = sorted({int(z) for z in numbers})
        super().__init__(f"{model} does not support atomic numbers {self.numbers}", field="numbers")


def element_problem(model: str, numbers: Iterable[int], supported: frozenset[int] | set[int]) -> str | None:
    """Why ``model`` cannot take these atomic numbers (None: it can), for checks that answer with a message."""
    missing = {int(z) for z in numbers} - set(supported)
    return str(UnsupportedElements(model, missing)) if missing else None


def check_elements(model: str, numbers: Iterable[int], supported: frozenset[int] | set[int]) -> None:
    """Raise UnsupportedElements naming ``model`` for every atomic number outside ``supported``."""
    missing = {int(z) for z in numbers} - set(supported)
    if missing:
        raise UnsupportedElements(model, missing)


def encode_structures(systems: Sequence[System], active_mask: bool = False) -> dict[str, np.ndarray]:
    """The packed arrays of ``systems``; ``active_mask`` adds ACTIVE_MASK (all True where a system has none)."""
    arrays = {
        "POSITIONS": np.concatenate([s.positions for s in systems]).astype(np.float64),
        "NUMBERS": np.concatenate([s.numbers for s in systems]).astype(np.int32),
        "CELLS": np.stack([s.cell for s in systems]).astype(np.float64),
        "PBC": np.stack([s.pbc for s in systems]).astype(bool),
        "N_ATOMS": np.array([s.n_atoms for s in systems], dtype=np.int32),
    }
    if active_mask:
        masks = [s.active_mask if s.active_mask is not None else np.ones(s.n_atoms, bool) for s in systems]
        arrays[ACTIVE_MASK] = np.concatenate(masks).astype(bool)
    return arrays


def decode_structures(arrays: Mapping[str, np.ndarray]) -> list[System]:
    """The systems packed in ``arrays`` (ACTIVE_MASK read when present); InvalidInput when they disagree."""
    from matserve.structures import System

    missing = [name for name in STRUCTURE_ARRAYS if name not in arrays]
    if missing:
        raise InvalidInput(f"missing inputs {missing}")
    n_atoms = np.asarray(arrays["N_ATOMS"]).astype(np.int64).reshape(-1)
    positions = np.asarray(arrays["POSITIONS"]).reshape(-1, 3)
    numbers = np.asarray(arrays["NUMBERS"]).reshape(-1)
    cells = np.asarray(arrays["CELLS"]).reshape(-1, 3, 3)
    pbc = np.asarray(arrays["PBC"]).reshape(-1, 3)
    mask = arrays.get(ACTIVE_MASK)
    if len(n_atoms) == 0 or (n_atoms < 1).any() or n_atoms.sum() != len(positions) or len(numbers) != len(positions):
        raise InvalidInput("N_ATOMS does not match POSITIONS and NUMBERS", field="N_ATOMS")
    if len(cells) != len(n_atoms) or len(pbc) != len(n_atoms):
        raise InvalidInput("CELLS and PBC need one entry per structure", field="CELLS")
    if mask is not None and np.asarray(mask).size != len(positions):
        raise InvalidInput("ACTIVE_MASK needs one entry per atom", field=ACTIVE_MASK)
    bounds = np.cumsum(n_atoms)[:-1]
    masks = np.split(np.asarray(mask).reshape(-1).astype(bool), bounds) if mask is not None else [None] * len(n_atoms)
    return [System(p, z, cell, periodic, m) for p, z, cell, periodic, m
            in zip(np.split(positions, bounds), np.split(numbers, bounds), cells, pbc, masks)]


def decode_one_structure(arrays: Mapping[str, np.ndarray]) -> System:
    """The single system a one-structure model (plmf, mfd) takes."""
    systems = decode_structures(arrays)
    if len(systems) != 1:
        raise InvalidInput(f"this model takes one structure per request, not {len(systems)}", field="N_ATOMS")
    return systems[0]
