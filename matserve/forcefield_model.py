"""What the Triton ``forcefield`` model does, as plain Python on numpy arrays.

Inputs are one packed batch (all atoms concatenated, ``N_ATOMS`` per structure);
the relaxation inputs are optional and default to a single point (zero steps).
"""

from __future__ import annotations

import numpy as np
import torch

from matserve.forcefields import ForceField, load_forcefield
from matserve.relax import RelaxOptions, relax
from matserve.structures import System

REQUIRED_INPUTS = ("POSITIONS", "NUMBERS", "CELLS", "PBC", "N_ATOMS")
OPTIONAL_INPUTS = ("ACTIVE_MASK", "FMAX", "PRESSURE_TOL", "CELLOPT", "MAX_STEPS", "ATOM_BUDGET")
OUTPUTS = ("ENERGY", "FORCES", "STRESS", "POSITIONS_OUT", "CELLS_OUT", "CONVERGED", "NSTEPS")


class InvalidBatchError(ValueError):
    """The packed inputs are inconsistent or name elements the force field cannot handle."""


def systems_from_inputs(inputs: dict[str, np.ndarray]) -> list[System]:
    missing = [name for name in REQUIRED_INPUTS if name not in inputs]
    if missing:
        raise InvalidBatchError(f"missing inputs {missing}")
    n_atoms = inputs["N_ATOMS"].astype(np.int64).reshape(-1)
    positions = inputs["POSITIONS"].reshape(-1, 3)
    numbers = inputs["NUMBERS"].reshape(-1)
    cells = inputs["CELLS"].reshape(-1, 3, 3)
    pbc = inputs["PBC"].reshape(-1, 3)
    mask = inputs.get("ACTIVE_MASK")
    if (n_atoms < 1).any() or n_atoms.sum() != len(positions) or len(numbers) != len(positions):
        raise InvalidBatchError("N_ATOMS does not match POSITIONS and NUMBERS")
    if len(cells) != len(n_atoms) or len(pbc) != len(n_atoms):
        raise InvalidBatchError("CELLS and PBC need one entry per structure")
    if mask is not None and mask.size != len(positions):
        raise InvalidBatchError("ACTIVE_MASK needs one entry per atom")
    bounds = np.cumsum(n_atoms)[:-1]
    masks = np.split(mask.reshape(-1).astype(bool), bounds) if mask is not None else [None] * len(n_atoms)
    return [
        System(pos, num, cell, p, m)
        for pos, num, cell, p, m in zip(np.split(positions, bounds), np.split(numbers, bounds), cells, pbc, masks)
    ]


def options_from_inputs(inputs: dict[str, np.ndarray], n_systems: int) -> list[RelaxOptions]:
    def per_system(name: str, default: float | bool | int) -> np.ndarray:
        value = inputs.get(name)
        if value is None:
            return np.full(n_systems, default)
        value = value.reshape(-1)
        return np.full(n_systems, value[0]) if value.size == 1 else value

    defaults = RelaxOptions()
    fmax = per_system("FMAX", defaults.fmax)
    pressure_tol = per_system("PRESSURE_TOL", defaults.pressure_tol_kbar)
    cellopt = per_system("CELLOPT", defaults.cellopt)
    max_steps = per_system("MAX_STEPS", 0)  # without relaxation inputs: a single point
    if any(len(v) != n_systems for v in (fmax, pressure_tol, cellopt, max_steps)):
        raise InvalidBatchError("relaxation inputs need one value, or one per structure")
    return [
        RelaxOptions(fmax=float(f), pressure_tol_kbar=float(p), cellopt=bool(c), max_steps=int(s))
        for f, p, c, s in zip(fmax, pressure_tol, cellopt, max_steps)
    ]


class ForcefieldModel:
    def __init__(self, name: str = "chgnet", device: str = "cpu", model_path: str = "", atom_budget: int = 0):
        self.forcefield: ForceField = load_forcefield(name, device=device, model_path=model_path)
        self.atom_budget = atom_budget

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        systems = systems_from_inputs(inputs)
        options = options_from_inputs(inputs, len(systems))
        missing = self.forcefield.unsupported_numbers(np.concatenate([s.numbers for s in systems]).tolist())
        if missing:
            raise InvalidBatchError(f"force field {self.forcefield.name!r} does not support atomic numbers {missing}")
        budget = int(inputs["ATOM_BUDGET"].reshape(-1)[0]) if "ATOM_BUDGET" in inputs else self.atom_budget
        results = relax(self.forcefield, systems, options, atom_budget=budget)
        return {
            "ENERGY": np.array([r.energy for r in results], dtype=np.float64),
            "FORCES": np.concatenate([r.forces for r in results]).astype(np.float64),
            "STRESS": np.stack([r.stress for r in results]).astype(np.float64),
            "POSITIONS_OUT": np.concatenate([r.system.positions for r in results]).astype(np.float64),
            "CELLS_OUT": np.stack([r.system.cell for r in results]).astype(np.float64),
            "CONVERGED": np.array([r.converged for r in results], dtype=bool),
            "NSTEPS": np.array([r.n_steps for r in results], dtype=np.int32),
        }


def torch_device(kind: str, device_id: int | str) -> str:
    return f"cuda:{device_id}" if kind.upper() == "GPU" and torch.cuda.is_available() else "cpu"
