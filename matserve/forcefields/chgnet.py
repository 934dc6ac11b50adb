"""CHGNet 0.3.0 (weights inside the ``chgnet`` wheel) over a packed batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from matserve.contract import WeightsInfo, sha256_file
from matserve.forcefields.base import ForceField, ForceFieldOutput
from matserve.forcefields.boxing import molecule_box
from matserve.structures import Batch

CHGNET_MAX_Z = 94


def checkpoint_path(model_name: str = "0.3.0") -> Path:
    """The weights file shipped inside the chgnet wheel."""
    import chgnet

    return next((Path(chgnet.__file__).parent / "pretrained" / model_name).glob("*.pth.tar"))


class CHGNetForceField(ForceField):
    name = "chgnet"
    supported_numbers = frozenset(range(1, CHGNET_MAX_Z + 1))

    def __init__(self, model_name: str = "0.3.0", device: str = "cpu", name: str = "chgnet", title: str = ""):
        from chgnet.model import CHGNet

        self.device = torch.device(device)
        self.model = CHGNet.load(model_name=model_name, use_device=str(self.device), verbose=False)
        self.model.eval()
        self.model_name = model_name
        self.name = name
        self.title = title or f"CHGNet {model_name}"
        self.cutoff = float(self.model.graph_converter.atom_graph_cutoff)

    @classmethod
    def weights_file(cls, model_name: str = "0.3.0") -> Path:
        return checkpoint_path(model_name)

    @classmethod
    def covered_numbers(cls, model_name: str = "0.3.0") -> frozenset[int]:
        return cls.supported_numbers

    @property
    def weights(self) -> WeightsInfo:
        checkpoint = checkpoint_path(self.model_name)
        return WeightsInfo(self.title, checkpoint.name, sha256_file(checkpoint))

    def _structure(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> Structure:
        if not pbc.any():
            positions, cell = molecule_box(positions, self.cutoff)
        return Structure(Lattice(cell), numbers, positions, coords_are_cartesian=True)

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        """Energy, forces and stress from one backward pass.

        CHGNet's own ``forward`` takes forces and stresses in two backward passes
        that keep the graph for training (``create_graph=True``); for inference one
        pass over positions and strains together gives the same numbers at about
        half the cost.
        """
        from chgnet.model.model import BatchedGraph

        self.check_elements(batch.numbers)
        positions = batch.split_atoms(batch.positions.detach().cpu().double())
        numbers = batch.split_atoms(batch.numbers.cpu())
        cells = batch.cells.detach().cpu().double().numpy()
        pbc = batch.pbc.cpu().numpy()
        graphs = [
            self.model.graph_converter(self._structure(pos.numpy(), num.numpy(), cell, p)).to(self.device)
            for pos, num, cell, p in zip(positions, numbers, cells, pbc)
        ]
        model = self.model
        batched = BatchedGraph.from_graphs(graphs, bond_basis_expansion=model.bond_basis_expansion,
                                           angle_basis_expansion=model.angle_basis_expansion,
                                           compute_stress=compute_stress)
        per_atom = model._compute(batched, compute_force=False, compute_stress=False)["e"]
        n_atoms = batch.n_atoms.to(self.device)
        total = per_atom * n_atoms  # the model is intensive: its ``e`` is per atom
        inputs = [*batched.atom_positions, *(batched.strains if compute_stress else [])]
        gradients = torch.autograd.grad(total.sum(), inputs)
        reference = model.composition_model(graphs) * n_atoms if model.composition_model is not None else 0.0
        out_device = batch.positions.device
        energy = (total.detach() + reference).to(out_device, torch.float64)
        forces = -torch.cat(gradients[: len(graphs)]).to(out_device, torch.float64)
        if compute_stress:
            strain_gradients = torch.stack(gradients[len(graphs):]).to(out_device, torch.float64)
            volumes = batched.volumes.detach().view(-1, 1, 1).to(out_device, torch.float64)
            stress = strain_gradients / volumes
            stress[~batch.pbc.any(dim=1)] = 0.0  # a boxed molecule has no physical stress
        else:
            stress = torch.zeros(batch.n_systems, 3, 3, dtype=torch.float64, device=out_device)
        return ForceFieldOutput(energy=energy, forces=forces, stress=stress)
