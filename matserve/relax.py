"""Batched FIRE / FIRE 2.0 geometry relaxation with optional cell relaxation and in-flight batching.

All running structures step together as one packed batch (flat per-atom tensors
plus a per-atom system index). Each structure keeps its own optimiser state (time
step, mixing, velocity) and its own convergence test, so a structure that
converges leaves the batch at once and a waiting one takes its place.

Each structure uses FIRE (ASE's ``FIRE``) or FIRE 2.0 (ASE's ``FIRE2``, Guénolé et
al., Comput. Mater. Sci. 175, 109584 (2020)), with ASE's constants for each, so
results match ASE's on the same model.

Cell relaxation follows ASE's ``UnitCellFilter``: the optimiser sees atom
positions in the reference cell plus ``cell_factor * F`` (``F`` the deformation
gradient), with generalised forces ``f @ F`` and ``virial / cell_factor``.
Or ASE's ``FrechetCellFilter``: the cell variables are ``cell_factor * log(F)``
and their forces the virial pulled back through the Fréchet derivative of the
matrix exponential, divided by ``cell_factor`` (ASE's ``exp_cell_factor``, also
the number of atoms).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch

from matserve.forcefields.base import EV_PER_A3_TO_KBAR, ForceField
from matserve.structures import Batch, System

# ASE FIRE defaults
DT_START = 0.1
DT_MAX = 1.0
MAX_STEP = 0.2  # Å, per structure, on the norm of the whole step
N_MIN = 5
F_INC = 1.1
F_DEC = 0.5
ALPHA_START = 0.1
F_ALPHA = 0.99
# ASE FIRE2 defaults (use_abc=False) where they differ from FIRE's; dt start, dt max, max step,
# f_inc, f_dec and f_alpha are the same.
FIRE2_DT_MIN = 2e-3
FIRE2_N_MIN = 20
FIRE2_ALPHA_START = 0.25


@dataclass(frozen=True)
class RelaxOptions:
    fmax: float = 0.005  # eV/Å
    pressure_tol_kbar: float = 0.5
    cellopt: bool = False
    max_steps: int = 2000
    optimizer: str = "fire"  # one of OPTIMIZERS
    cell_filter: str = "unit"  # one of CELL_FILTERS; used with cellopt


OPTIMIZERS = ("fire", "fire2")  # ASE's FIRE; FIRE 2.0 (Guenole et al. 2020), the BGR NIM 1.1 default
CELL_FILTERS = ("unit", "frechet")  # ASE's UnitCellFilter; ASE's FrechetCellFilter (log-strain cell)


@dataclass
class RelaxResult:
    system: System  # final geometry
    energy: float  # eV
    forces: np.ndarray  # (n, 3) eV/Å
    stress: np.ndarray  # (3, 3) eV/Å³, ASE sign
    converged: bool
    n_steps: int


@dataclass
class FireState:
    """The running batch: geometry, FIRE variables and bookkeeping, one row per structure.

    ``n_steps`` counts optimiser steps, one per force evaluation after the first: for FIRE2 that is
    ASE's ``nsteps`` plus one for each uphill step, where ASE evaluates the forces a second time
    inside its step (we take that evaluation as the next batched one).
    """

    index: torch.Tensor  # (B,) serial number of each structure (the Relaxer maps it to its caller's key)
    numbers: torch.Tensor  # (N,)
    n_atoms: torch.Tensor  # (B,)
    pbc: torch.Tensor  # (B, 3)
    ref_positions: torch.Tensor  # (N, 3) positions in the reference cell
    ref_cells: torch.Tensor  # (B, 3, 3)
    deform: torch.Tensor  # (B, 3, 3) deformation gradient F; cell = ref_cell @ F.T
    log_deform: torch.Tensor  # (B, 3, 3) log(F), the Frechet filter's cell variables / cell_factor; else zero
    active: torch.Tensor  # (N,) bool: may move
    velocity: torch.Tensor  # (N, 3)
    cell_velocity: torch.Tensor  # (B, 3, 3)
    dt: torch.Tensor  # (B,)
    alpha: torch.Tensor  # (B,)
    n_positive: torch.Tensor  # (B,) steps since the power was last negative
    n_steps: torch.Tensor  # (B,)
    fmax: torch.Tensor  # (B,)
    pressure_tol_ev_per_a3: torch.Tensor  # (B,) eV/Å³
    cellopt: torch.Tensor  # (B,) bool
    max_steps: torch.Tensor  # (B,)
    fire2: torch.Tensor  # (B,) bool: FIRE 2.0, else FIRE
    frechet: torch.Tensor  # (B,) bool: cellopt with the Frechet cell filter, else the unit-cell one
    stepped_back: torch.Tensor  # (B,) bool: FIRE2 went half a step back at the last (uphill) step

    @property
    def system_idx(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self.n_atoms)), self.n_atoms)

    @property
    def positions(self) -> torch.Tensor:
        return torch.bmm(self.ref_positions.unsqueeze(1), self.deform.transpose(1, 2)[self.system_idx]).squeeze(1)

    @property
    def cells(self) -> torch.Tensor:
        return torch.bmm(self.ref_cells, self.deform.transpose(1, 2))

    @property
    def cell_factor(self) -> torch.Tensor:
        return self.n_atoms.to(self.dt.dtype)

    def batch(self) -> Batch:
        return Batch(self.positions, self.numbers, self.cells, self.pbc, self.n_atoms)


PER_ATOM = ("numbers", "ref_positions", "active", "velocity")


def _fields() -> list[str]:
    return list(FireState.__dataclass_fields__)


def select(state: FireState, keep: torch.Tensor) -> FireState:
    """The structures where ``keep`` (B,) is true."""
    atom_keep = keep[state.system_idx]
    return FireState(**{name: getattr(state, name)[atom_keep if name in PER_ATOM else keep] for name in _fields()})


def concat(first: FireState, second: FireState) -> FireState:
    return FireState(**{name: torch.cat([getattr(first, name), getattr(second, name)]) for name in _fields()})


def initial_state(systems: list[System], options: list[RelaxOptions], indices: list[int]) -> FireState:
    for option in options:
        if option.optimizer not in OPTIMIZERS or option.cell_filter not in CELL_FILTERS:
            raise ValueError(f"unknown optimizer {option.optimizer!r} or cell filter {option.cell_filter!r}")
    dtype = torch.float64
    n = len(systems)
    fire2 = torch.tensor([o.optimizer == "fire2" for o in options])
    cellopt = torch.tensor([o.cellopt and s.pbc.all() for o, s in zip(options, systems)])
    n_atoms = torch.tensor([s.n_atoms for s in systems])
    masks = [s.active_mask if s.active_mask is not None else np.ones(s.n_atoms, bool) for s in systems]
    return FireState(
        index=torch.tensor(indices),
        numbers=torch.as_tensor(np.concatenate([s.numbers for s in systems])),
        n_atoms=n_atoms,
        pbc=torch.as_tensor(np.stack([s.pbc for s in systems])),
        ref_positions=torch.as_tensor(np.concatenate([s.positions for s in systems]), dtype=dtype),
        ref_cells=torch.as_tensor(np.stack([s.cell for s in systems]), dtype=dtype),
        deform=torch.eye(3, dtype=dtype).repeat(n, 1, 1),
        log_deform=torch.zeros(n, 3, 3, dtype=dtype),
        active=torch.as_tensor(np.concatenate(masks)),
        velocity=torch.zeros(int(n_atoms.sum()), 3, dtype=dtype),
        cell_velocity=torch.zeros(n, 3, 3, dtype=dtype),
        dt=torch.full((n,), DT_START, dtype=dtype),
        alpha=torch.where(fire2, torch.tensor(FIRE2_ALPHA_START, dtype=dtype), torch.tensor(ALPHA_START, dtype=dtype)),
        n_positive=torch.zeros(n, dtype=torch.long),
        n_steps=torch.zeros(n, dtype=torch.long),
        fmax=torch.tensor([o.fmax for o in options], dtype=dtype),
        pressure_tol_ev_per_a3=torch.tensor([o.pressure_tol_kbar for o in options], dtype=dtype) / EV_PER_A3_TO_KBAR,
        cellopt=cellopt,
        max_steps=torch.tensor([o.max_steps for o in options]),
        fire2=fire2,
        frechet=cellopt & torch.tensor([o.cell_filter == "frechet" for o in options]),
        stepped_back=torch.zeros(n, dtype=torch.bool),
    )


def per_system_sum(values: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    """Sum per-atom rows (N, ...) into (B,)."""
    flat = values.reshape(len(values), -1).sum(dim=1)
    return torch.zeros(n_systems, dtype=values.dtype).index_add_(0, system_idx, flat)


def per_system_max(values: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    out = torch.zeros(n_systems, dtype=values.dtype)
    return out.scatter_reduce(0, system_idx, values, reduce="amax", include_self=True)


def is_converged(state: FireState, forces: torch.Tensor, stress: torch.Tensor) -> torch.Tensor:
    """(B,) max |force| over movable atoms ≤ fmax, and with cellopt max |stress| ≤ pressure tolerance."""
    force_norm = torch.linalg.norm(forces, dim=1) * state.active
    max_force = per_system_max(force_norm, state.system_idx, len(state.n_atoms))
    max_stress = stress.abs().amax(dim=(1, 2))
    return (max_force <= state.fmax) & (~state.cellopt | (max_stress <= state.pressure_tol_ev_per_a3))


def system_norm(atom_part: torch.Tensor, cell_part: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
    """(B,) norm of each structure's whole vector: its atoms' rows and its 3x3 cell part."""
    squares = per_system_sum(atom_part**2, system_idx, len(cell_part)) + (cell_part**2).sum(dim=(1, 2))
    return squares.sqrt()


@dataclass
class Update:
    """What one optimiser step makes of each structure's FIRE variables, and the step it takes."""

    velocity: torch.Tensor  # (N, 3)
    cell_velocity: torch.Tensor  # (B, 3, 3)
    dt: torch.Tensor  # (B,)
    alpha: torch.Tensor  # (B,)
    n_positive: torch.Tensor  # (B,)
    step_atoms: torch.Tensor  # (N, 3)
    step_cell: torch.Tensor  # (B, 3, 3)
    stepped_back: torch.Tensor  # (B,) bool


def expm_frechet_adjoint(log_deform: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) ``<D exp(L)[E_mn], G>`` for the nine unit directions ``E_mn`` at once.

    That is ASE's ``FrechetCellFilter`` cell force from ``G`` (its ``virial @ inv(F.T)``), which
    ASE sums over nine ``expm_frechet`` calls. The adjoint of ``D exp(L)`` is ``D exp(L.T)``, and
    ``D exp(A)[G]`` is the upper-right block of ``exp([[A, G], [0, A]])``.
    """
    block = torch.zeros(len(log_deform), 6, 6, dtype=log_deform.dtype)
    block[:, :3, :3] = log_deform.transpose(1, 2)
    block[:, 3:, 3:] = log_deform.transpose(1, 2)
    block[:, :3, 3:] = gradient
    return torch.linalg.matrix_exp(block)[:, :3, 3:]


def generalised_forces(
    state: FireState, forces: torch.Tensor, stress: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3) atom and (B, 3, 3) cell forces of each structure's cell filter (no cell forces without cellopt)."""
    idx = state.system_idx
    atom_forces = torch.bmm(forces.unsqueeze(1), state.deform[idx]).squeeze(1) * state.active.unsqueeze(1)
    volume = torch.linalg.det(state.cells).abs()
    virial = -volume.view(-1, 1, 1) * stress
    virial = torch.linalg.solve(state.deform, virial.transpose(1, 2)).transpose(1, 2)
    log_virial = expm_frechet_adjoint(state.log_deform, virial)
    virial = torch.where(state.frechet.view(-1, 1, 1), log_virial, virial)
    cell_forces = virial / state.cell_factor.view(-1, 1, 1) * state.cellopt.view(-1, 1, 1)
    return atom_forces, cell_forces


def fire(state: FireState, atom_forces: torch.Tensor, cell_forces: torch.Tensor) -> Update:
    """ASE's FIRE, per structure: mix the velocity towards the force (zero it uphill), then an
    Euler step, capped at MAX_STEP."""
    idx = state.system_idx
    n_systems = len(state.n_atoms)

    power = per_system_sum(atom_forces * state.velocity, idx, n_systems) + (cell_forces * state.cell_velocity).sum(
        dim=(1, 2)
    )
    uphill = power <= 0
    fresh = state.n_steps == 0  # ASE starts from v = 0 without mixing
    mixing = ~uphill & ~fresh
    f_norm = system_norm(atom_forces, cell_forces, idx).clamp_min(1e-30)
    v_norm = system_norm(state.velocity, state.cell_velocity, idx)
    scale = (state.alpha * v_norm / f_norm) * mixing
    keep = (1 - state.alpha * mixing) * ~uphill
    velocity = keep[idx].unsqueeze(1) * state.velocity + scale[idx].unsqueeze(1) * atom_forces
    cell_velocity = keep.view(-1, 1, 1) * state.cell_velocity + scale.view(-1, 1, 1) * cell_forces
    grow = mixing & (state.n_positive > N_MIN)
    dt = torch.where(grow, (state.dt * F_INC).clamp_max(DT_MAX), state.dt)
    alpha = torch.where(grow, state.alpha * F_ALPHA, state.alpha)
    n_positive = torch.where(mixing, state.n_positive + 1, state.n_positive)
    reset = uphill & ~fresh
    dt = torch.where(reset, dt * F_DEC, dt)
    alpha = torch.where(reset, torch.full_like(alpha, ALPHA_START), alpha)
    n_positive = torch.where(reset, torch.zeros_like(n_positive), n_positive)

    velocity = velocity + dt[idx].unsqueeze(1) * atom_forces
    cell_velocity = cell_velocity + dt.view(-1, 1, 1) * cell_forces
    step_atoms = dt[idx].unsqueeze(1) * velocity
    step_cell = dt.view(-1, 1, 1) * cell_velocity
    step_norm = system_norm(step_atoms, step_cell, idx)
    shrink = torch.where(step_norm > MAX_STEP, MAX_STEP / step_norm.clamp_min(1e-30), torch.ones_like(step_norm))
    return Update(
        velocity=velocity,
        cell_velocity=cell_velocity,
        dt=dt,
        alpha=alpha,
        n_positive=n_positive,
        step_atoms=shrink[idx].unsqueeze(1) * step_atoms,
        step_cell=shrink.view(-1, 1, 1) * step_cell,
        stepped_back=torch.zeros_like(uphill),
    )


def fire2(state: FireState, atom_forces: torch.Tensor, cell_forces: torch.Tensor) -> Update:
    """ASE's FIRE2 (``use_abc=False``), per structure: semi-implicit Euler, then mixing, step capped
    at MAX_STEP.

    Uphill, ASE goes half a step back, zeroes the velocity and takes its step from the forces
    evaluated there, all inside one step. Here going back is the whole step; the next (batched)
    evaluation gives those forces, and the step after it skips the power test as ASE does. The one
    difference: we test convergence at the point stepped back to, where ASE tests only after its
    step, so a structure may stop one evaluation earlier.
    """
    idx = state.system_idx
    n_systems = len(state.n_atoms)

    power = per_system_sum(atom_forces * state.velocity, idx, n_systems) + (cell_forces * state.cell_velocity).sum(
        dim=(1, 2)
    )
    tested = (state.n_steps > 0) & ~state.stepped_back  # ASE starts from v = 0 without a test
    downhill = tested & (power > 0)
    uphill = tested & ~(power > 0)
    n_positive = torch.where(downhill, state.n_positive + 1, state.n_positive)
    grow = downhill & (n_positive > FIRE2_N_MIN)
    dt = torch.where(grow, (state.dt * F_INC).clamp_max(DT_MAX), state.dt)
    alpha = torch.where(grow, state.alpha * F_ALPHA, state.alpha)
    n_positive = torch.where(uphill, torch.zeros_like(n_positive), n_positive)
    dt = torch.where(uphill, (dt * F_DEC).clamp_min(FIRE2_DT_MIN), dt)
    alpha = torch.where(uphill, torch.full_like(alpha, FIRE2_ALPHA_START), alpha)

    velocity = state.velocity + dt[idx].unsqueeze(1) * atom_forces
    cell_velocity = state.cell_velocity + dt.view(-1, 1, 1) * cell_forces
    f_norm = system_norm(atom_forces, cell_forces, idx).clamp_min(1e-30)
    v_norm = system_norm(velocity, cell_velocity, idx)
    keep, scale = 1 - alpha, alpha / f_norm * v_norm
    velocity = keep[idx].unsqueeze(1) * velocity + scale[idx].unsqueeze(1) * atom_forces
    cell_velocity = keep.view(-1, 1, 1) * cell_velocity + scale.view(-1, 1, 1) * cell_forces
    step_atoms = dt[idx].unsqueeze(1) * velocity
    step_cell = dt.view(-1, 1, 1) * cell_velocity
    step_norm = system_norm(step_atoms, step_cell, idx)
    shrink = torch.where(step_norm > MAX_STEP, MAX_STEP / step_norm.clamp_min(1e-30), torch.ones_like(step_norm))

    back = -0.5 * dt
    atom_uphill, cell_uphill = uphill[idx].unsqueeze(1), uphill.view(-1, 1, 1)
    return Update(
        velocity=torch.where(atom_uphill, torch.zeros_like(velocity), velocity),
        cell_velocity=torch.where(cell_uphill, torch.zeros_like(cell_velocity), cell_velocity),
        dt=dt,
        alpha=alpha,
        n_positive=n_positive,
        step_atoms=torch.where(atom_uphill, back[idx].unsqueeze(1) * state.velocity,
                               shrink[idx].unsqueeze(1) * step_atoms),
        step_cell=torch.where(cell_uphill, back.view(-1, 1, 1) * state.cell_velocity,
                              shrink.view(-1, 1, 1) * step_cell),
        stepped_back=uphill,
    )


def choose(mask: torch.Tensor, chosen: Update, other: Update, system_idx: torch.Tensor) -> Update:
    """Per structure, ``chosen`` where ``mask`` (B,) is true, else ``other``."""
    atoms, cells = mask[system_idx].unsqueeze(1), mask.view(-1, 1, 1)
    return Update(
        velocity=torch.where(atoms, chosen.velocity, other.velocity),
        cell_velocity=torch.where(cells, chosen.cell_velocity, other.cell_velocity),
        dt=torch.where(mask, chosen.dt, other.dt),
        alpha=torch.where(mask, chosen.alpha, other.alpha),
        n_positive=torch.where(mask, chosen.n_positive, other.n_positive),
        step_atoms=torch.where(atoms, chosen.step_atoms, other.step_atoms),
        step_cell=torch.where(cells, chosen.step_cell, other.step_cell),
        stepped_back=torch.where(mask, chosen.stepped_back, other.stepped_back),
    )


def fire_step(state: FireState, forces: torch.Tensor, stress: torch.Tensor) -> None:
    """One optimiser step of every structure in ``state``, in place: FIRE or FIRE2, unit-cell or
    Frechet filter, each structure its own (with both optimisers in the batch, both run over all
    of it and each structure keeps its own one's update)."""
    atom_forces, cell_forces = generalised_forces(state, forces, stress)
    update = fire(state, atom_forces, cell_forces)
    if state.fire2.any():
        update = choose(state.fire2, fire2(state, atom_forces, cell_forces), update, state.system_idx)
    state.velocity, state.cell_velocity = update.velocity, update.cell_velocity
    state.dt, state.alpha, state.n_positive = update.dt, update.alpha, update.n_positive
    state.stepped_back = update.stepped_back
    state.ref_positions = state.ref_positions + update.step_atoms * state.active.unsqueeze(1)
    # Cell variables: cell_factor * F (unit), cell_factor * log(F) (Frechet; ASE's also hold a
    # constant cell_factor * log(cell_factor) * I, which no step depends on).
    cell_factor = state.cell_factor.view(-1, 1, 1)
    frechet = state.frechet.view(-1, 1, 1)
    log_deform = (state.log_deform * cell_factor + update.step_cell) / cell_factor
    state.deform = torch.where(frechet, torch.linalg.matrix_exp(log_deform),
                               (state.deform * cell_factor + update.step_cell) / cell_factor)
    state.log_deform = torch.where(frechet, log_deform, state.log_deform)
    state.n_steps = state.n_steps + 1


class Relaxer:
    """Owns one running batch: every ``step`` admits waiting structures up to the atom budget,
    evaluates and moves every running structure once, and retires those that finished.

    Structures carry a caller's key (any hashable); ``step`` returns ``(key, result)`` for each
    structure retired in it. Callers that relax one list at once use ``relax``; a scheduler that
    serves many requests keeps one Relaxer and adds work between steps.
    """

    def __init__(self, forcefield: ForceField, atom_budget: int = 0):
        self.forcefield = forcefield
        self.atom_budget = atom_budget  # 0: no cap
        self._waiting: deque[tuple[int, System, RelaxOptions]] = deque()
        self._keys: dict[int, Hashable] = {}  # internal serial -> caller's key
        self._serial = 0
        self.state: FireState | None = None

    @property
    def running_atoms(self) -> int:
        return int(self.state.n_atoms.sum()) if self.state is not None else 0

    @property
    def waiting_atoms(self) -> int:
        return sum(system.n_atoms for _, system, _ in self._waiting)

    @property
    def idle(self) -> bool:
        return not self._waiting and self.state is None

    def add(self, key: Hashable, system: System, options: RelaxOptions) -> None:
        self._keys[self._serial] = key
        self._waiting.append((self._serial, system, options))
        self._serial += 1

    def remove(self, keys: set[Hashable]) -> int:
        """Drop these structures, waiting or running; returns how many were dropped."""
        dropped = {serial for serial, key in self._keys.items() if key in keys}
        if not dropped:
            return 0
        self._waiting = deque(entry for entry in self._waiting if entry[0] not in dropped)
        if self.state is not None:
            keep = torch.tensor([int(i) not in dropped for i in self.state.index], dtype=torch.bool)
            self.state = select(self.state, keep) if keep.any() else None
        for serial in dropped:
            del self._keys[serial]
        return len(dropped)

    def _admit(self) -> None:
        """Move waiting structures (in order) into the batch while they fit the atom budget;
        an empty batch always takes one, however large."""
        atoms = self.running_atoms
        admitted: list[tuple[int, System, RelaxOptions]] = []
        while self._waiting:
            size = self._waiting[0][1].n_atoms
            if self.atom_budget and atoms + size > self.atom_budget and (admitted or atoms):
                break
            admitted.append(self._waiting.popleft())
            atoms += size
        if admitted:
            serials, systems, options = zip(*admitted)
            fresh = initial_state(list(systems), list(options), list(serials))
            self.state = fresh if self.state is None else concat(self.state, fresh)

    def step(self) -> list[tuple[Hashable, RelaxResult]]:
        self._admit()
        state = self.state
        if state is None:
            return []
        output = self.forcefield(state.batch())
        forces, stress = output.forces.cpu(), output.stress.cpu()
        done = is_converged(state, forces, stress)
        finished = done | (state.n_steps >= state.max_steps)
        retired = [(self._keys.pop(serial), result)
                   for serial, result in _results(state, finished, done, output.energy.cpu(), forces, stress)]
        if finished.all():
            self.state = None
            return retired
        keep = ~finished
        self.state = select(state, keep)
        fire_step(self.state, forces[keep[state.system_idx]], stress[keep])
        return retired


def relax(
    forcefield: ForceField,
    systems: list[System],
    options: list[RelaxOptions] | RelaxOptions,
    atom_budget: int = 0,
) -> list[RelaxResult]:
    """Relax every structure; ``atom_budget`` caps the atoms evaluated at once (0: no cap)."""
    if isinstance(options, RelaxOptions):
        options = [options] * len(systems)
    relaxer = Relaxer(forcefield, atom_budget)
    for position, (system, option) in enumerate(zip(systems, options)):
        relaxer.add(position, system, option)
    results: dict[Hashable, RelaxResult] = {}
    while not relaxer.idle:
        results.update(relaxer.step())
    return [results[position] for position in range(len(systems))]


def _results(
    state: FireState,
    finished: torch.Tensor,
    converged: torch.Tensor,
    energy: torch.Tensor,
    forces: torch.Tensor,
    stress: torch.Tensor,
) -> list[tuple[int, RelaxResult]]:
    """(serial, result) of each finished structure."""
    positions = state.positions.split(state.n_atoms.tolist())
    all_forces = forces.split(state.n_atoms.tolist())
    cells = state.cells
    starts = torch.cumsum(state.n_atoms, 0) - state.n_atoms
    results = []
    for b in torch.nonzero(finished).flatten().tolist():
        start, n = int(starts[b]), int(state.n_atoms[b])
        mask = state.active[start : start + n].numpy()
        system = System(positions[b].numpy().copy(), state.numbers[start : start + n].numpy().copy(),
                        cells[b].numpy().copy(), state.pbc[b].numpy().copy(), None if mask.all() else mask)
        results.append((int(state.index[b]), RelaxResult(
            system=system,
            energy=float(energy[b]),
            forces=all_forces[b].numpy().copy(),
            stress=stress[b].numpy().copy(),
            converged=bool(converged[b]),
            n_steps=int(state.n_steps[b]),
        )))
    return results
