"""D3 dispersion on top of any force field, from torch-dftd, over the whole packed batch at once.

torch-dftd's ``DFTD3Module.calc_energy_batch`` gives each system's D3 energy from a batched edge list
(its own neighbour search, ``calc_edge_index``, one system at a time). Forces and stress come from one
backward pass over positions and a per-system strain ``ε`` (positions and cell deformed by ``I + ε``):
stress = (1/V) dE/dε, the ASE sign of ``ForceFieldOutput``. Molecules (no periodic direction) have no
images and no stress.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from matserve.contract import WeightsInfo
from matserve.forcefields.base import ForceField, ForceFieldOutput
from matserve.forcefields.registry import Dispersion, with_dispersion_label
from matserve.structures import Batch

D3_MAX_Z = 94  # torch-dftd's reference C6 table covers H to Pu


class D3:
    """torch-dftd's D3 energy for a packed batch, with forces and stress by autograd (float64)."""

    def __init__(self, dispersion: Dispersion, device: str | torch.device = "cpu"):
        from torch_dftd.dftd3_xc_params import get_dftd3_default_params
        from torch_dftd.nn.dftd3_module import DFTD3Module

        self.dispersion = dispersion
        self.device = torch.device(device)
        params = get_dftd3_default_params(dispersion.damping, dispersion.functional)
        self.module = DFTD3Module(params, cutoff=dispersion.cutoff, dtype=torch.float64, bidirectional=True)
        self.module.to(self.device)

    def _edges(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(2, E) atom pairs within the cutoff over the packed batch, (E, 3) their integer cell shifts and
        (E,) the system of each pair."""
        from torch_dftd.functions.edge_extraction import calc_edge_index

        positions = batch.split_atoms(batch.positions.detach().cpu().double())
        edges, shifts, systems = [], [], []
        for index, (start, pos) in enumerate(zip(batch.offsets, positions)):
            pbc = batch.pbc[index].cpu()
            cell = batch.cells[index].detach().cpu().double() if bool(pbc.any()) else None
            edge_index, shift = calc_edge_index(pos, cell, pbc, cutoff=self.dispersion.cutoff, bidirectional=True)
            edges.append(edge_index + start)
            shifts.append(shift)
            systems.append(torch.full((edge_index.shape[1],), index, dtype=torch.long))
        return (torch.cat(edges, dim=1).to(self.device), torch.cat(shifts).to(self.device),
                torch.cat(systems).to(self.device))

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        edge_index, shifts, edge_system = self._edges(batch)
        out_device = batch.positions.device
        positions = batch.positions.detach().to(self.device, torch.float64).requires_grad_(True)
        cells = batch.cells.detach().to(self.device, torch.float64)
        periodic = batch.pbc.to(self.device).any(dim=1)
        strain = torch.zeros_like(cells, requires_grad=compute_stress)
        deformation = torch.eye(3, dtype=torch.float64, device=self.device) + strain
        system_idx = batch.system_idx.to(self.device)
        strained_positions = torch.einsum("na,nab->nb", positions, deformation[system_idx])
        strained_cells = cells @ deformation
        # Cartesian shift of each pair's image, S @ cell of its system (zero for a molecule's pairs)
        shift_positions = torch.einsum("ea,eab->eb", shifts, strained_cells[edge_system])
        cells_for_module = torch.where(periodic[:, None, None], strained_cells, torch.eye(3, dtype=torch.float64,
                                                                                             device=self.device))
        energy = self.module.calc_energy_batch(
            batch.numbers.to(self.device), strained_positions, edge_index, cells_for_module,
            batch.pbc.to(self.device), shift_positions, system_idx, edge_system, damping=self.dispersion.damping)
        inputs = [positions, strain] if compute_stress else [positions]
        gradients = [None] * len(inputs)
        if energy.requires_grad:  # not when no pair is within the cutoff (a lone atom)
            gradients = torch.autograd.grad(energy.sum(), inputs, allow_unused=True)
        forces = -gradients[0] if gradients[0] is not None else torch.zeros_like(positions)
        stress = torch.zeros_like(cells)
        if compute_stress and gradients[1] is not None:
            volumes = torch.linalg.det(cells).abs().clamp_min(1e-12)
            stress = torch.where(periodic[:, None, None], gradients[1] / volumes[:, None, None], stress)
        return ForceFieldOutput(energy=energy.detach().to(out_device, torch.float64),
                                forces=forces.detach().to(out_device, torch.float64),
                                stress=stress.detach().to(out_device, torch.float64))


class WithDispersion(ForceField):
    """A force field plus D3 dispersion: energies, forces and stresses are the sums of the two."""

    def __init__(self, base: ForceField, dispersion: Dispersion):
        if not dispersion.enabled:
            raise ValueError("WithDispersion needs a dispersion method (Dispersion('d3'))")
        self.base = base
        self.dispersion = dispersion
        self.d3 = D3(dispersion, base.device)
        self.name = base.name
        self.device = base.device
        self.uses_charge_and_spin = base.uses_charge_and_spin
        self.supported_numbers = frozenset(z for z in base.supported_numbers if z <= D3_MAX_Z)

    @property
    def weights(self) -> WeightsInfo:
        own = self.base.weights
        return replace(own, name=with_dispersion_label(own.name, self.dispersion))

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        self.check_elements(batch.numbers)
        model = self.base(batch, compute_stress)
        d3 = self.d3(batch, compute_stress)
        stress = model.stress + d3.stress if compute_stress else model.stress
        return ForceFieldOutput(energy=model.energy + d3.energy, forces=model.forces + d3.forces, stress=stress)
