"""What the Triton ``forcefield`` model does, as plain Python on numpy arrays.

Inputs are one request's packed structures (all atoms concatenated, ``N_ATOMS`` per
structure); the relaxation inputs are optional and default to a single point (zero steps).
The served model is decoupled: it answers with one response per structure, in the order
they finish, each carrying the structure's ``INDEX`` in the request (``structure_outputs``).
"""

from __future__ import annotations

import numpy as np
import torch

from matserve.contract import ACTIVE_MASK, STRUCTURE_ARRAYS, InvalidInput, decode_structures
from matserve.forcefields import ForceField, load_forcefield
from matserve.forcefields.registry import Dispersion
from matserve.relax import CELL_FILTERS, OPTIMIZERS, RelaxOptions, RelaxResult, relax
from matserve.structures import System

OPTIONAL_INPUTS = ("FMAX", "PRESSURE_TOL", "CELLOPT", "MAX_STEPS", "OPTIMIZER", "CELL_FILTER", "ATOM_BUDGET")
INPUTS = (*STRUCTURE_ARRAYS, ACTIVE_MASK, *OPTIONAL_INPUTS)
OUTPUTS = ("ENERGY", "FORCES", "STRESS", "POSITIONS_OUT", "CELLS_OUT", "CONVERGED", "NSTEPS")
STRUCTURE_OUTPUTS = (*OUTPUTS, "INDEX")


def options_from_inputs(inputs: dict[str, np.ndarray], n_systems: int) -> list[RelaxOptions]:
    def per_system(name: str, default: float | bool | int | str) -> np.ndarray:
        value = inputs.get(name)
        if value is None:
            return np.full(n_systems, default, dtype=object if isinstance(default, str) else None)
        value = value.reshape(-1)
        if value.dtype == object:
            value = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in value], dtype=object)
        return np.full(n_systems, value[0], dtype=value.dtype) if value.size == 1 else value

    defaults = RelaxOptions()
    fmax = per_system("FMAX", defaults.fmax)
    pressure_tol_kbar = per_system("PRESSURE_TOL", defaults.pressure_tol_kbar)
    cellopt = per_system("CELLOPT", defaults.cellopt)
    max_steps = per_system("MAX_STEPS", 0)  # without relaxation inputs: a single point
    optimizer = per_system("OPTIMIZER", defaults.optimizer)
    cell_filter = per_system("CELL_FILTER", defaults.cell_filter)
    if any(len(v) != n_systems for v in (fmax, pressure_tol_kbar, cellopt, max_steps, optimizer, cell_filter)):
        raise InvalidInput("relaxation inputs need one value, or one per structure")
    unknown = sorted(set(optimizer) - set(OPTIMIZERS)) + sorted(set(cell_filter) - set(CELL_FILTERS))
    if unknown:
        raise InvalidInput(f"unknown optimizer or cell filter {unknown}; "
                                f"optimizers {list(OPTIMIZERS)}, cell filters {list(CELL_FILTERS)}")
    return [
        RelaxOptions(fmax=float(f), pressure_tol_kbar=float(p), cellopt=bool(c), max_steps=int(s), optimizer=o,
                     cell_filter=cf)
        for f, p, c, s, o, cf in zip(fmax, pressure_tol_kbar, cellopt, max_steps, optimizer, cell_filter)
    ]


class ForceFieldModel:
    def __init__(self, name: str = "chgnet", device: str = "cpu", modal: str = "", atom_budget: int = 0,
                 model: str | None = None, dispersion: Dispersion | None = None):
        self.forcefield: ForceField = load_forcefield(name, device=device, modal=modal, model=model,
                                                      dispersion=dispersion)
        self.atom_budget = atom_budget

    def parse(self, inputs: dict[str, np.ndarray]) -> tuple[list[System], list[RelaxOptions], int]:
        """One request's structures, their options and its atom budget (0: the model's), or InvalidInput."""
        systems = decode_structures(inputs)
        options = options_from_inputs(inputs, len(systems))
        self.forcefield.check_elements(np.concatenate([s.numbers for s in systems]).tolist())
        budget = int(inputs["ATOM_BUDGET"].reshape(-1)[0]) if "ATOM_BUDGET" in inputs else 0
        return systems, options, budget

    def execute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All structures of one request relaxed together, answered at once (plain Python use)."""
        systems, options, budget = self.parse(inputs)
        results = relax(self.forcefield, systems, options, atom_budget=budget or self.atom_budget)
        return {
            "ENERGY": np.array([r.energy for r in results], dtype=np.float64),
            "FORCES": np.concatenate([r.forces for r in results]).astype(np.float64),
            "STRESS": np.stack([r.stress for r in results]).astype(np.float64),
            "POSITIONS_OUT": np.concatenate([r.system.positions for r in results]).astype(np.float64),
            "CELLS_OUT": np.stack([r.system.cell for r in results]).astype(np.float64),
            "CONVERGED": np.array([r.converged for r in results], dtype=bool),
            "NSTEPS": np.array([r.n_steps for r in results], dtype=np.int32),
        }


def structure_outputs(index: int, result: RelaxResult) -> dict[str, np.ndarray]:
    """One finished structure as the decoupled model's response tensors (a batch of one)."""
    return {
        "ENERGY": np.array([result.energy], dtype=np.float64),
        "FORCES": result.forces.astype(np.float64),
        "STRESS": result.stress.reshape(1, 3, 3).astype(np.float64),
        "POSITIONS_OUT": result.system.positions.astype(np.float64),
        "CELLS_OUT": result.system.cell.reshape(1, 3, 3).astype(np.float64),
        "CONVERGED": np.array([result.converged], dtype=bool),
        "NSTEPS": np.array([result.n_steps], dtype=np.int32),
        "INDEX": np.array([index], dtype=np.int32),
    }


def torch_device(kind: str, device_id: int | str) -> str:
    return f"cuda:{device_id}" if kind.upper() == "GPU" and torch.cuda.is_available() else "cpu"
