"""CHGNet 0.3.0 (weights inside the ``chgnet`` wheel) over a packed batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from matserve.forcefields.base import ForceField, ForceFieldOutput, WeightsInfo, sha256_file
from matserve.forcefields.boxing import molecule_box
from matserve.structures import Batch

GPA_TO_EV_PER_A3 = 1 / 160.21766208
CHGNET_MAX_Z = 94


def checkpoint_path(model_name: str = "0.3.0") -> Path:
    """The weights file shipped inside the chgnet wheel."""
    import chgnet

    return next((Path(chgnet.__file__).parent / "pretrained" / model_name).glob("*.pth.tar"))


class CHGNetForceField(ForceField):
    name = "chgnet"
    supported_numbers = frozenset(range(1, CHGNET_MAX_Z + 1))

    def __init__(self, model_name: str = "0.3.0", device: str = "cpu"):
        from chgnet.model import CHGNet

        self.device = torch.device(device)
        self.model = CHGNet.load(model_name=model_name, use_device=str(self.device), verbose=False)
        self.model.eval()
        self.model_name = model_name
        self.cutoff = float(self.model.graph_converter.atom_graph_cutoff)

    @property
    def weights(self) -> WeightsInfo:
        checkpoint = checkpoint_path(self.model_name)
        return WeightsInfo(f"CHGNet {self.model_name}", checkpoint.name, sha256_file(checkpoint))

    def _structure(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> Structure:
        if not pbc.any():
            positions, cell = molecule_box(positions, self.cutoff)
        return Structure(Lattice(cell), numbers, positions, coords_are_cartesian=True)

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        self.check_elements(batch.numbers)
        positions = batch.split_atoms(batch.positions.detach().cpu().double())
        numbers = batch.split_atoms(batch.numbers.cpu())
        cells = batch.cells.detach().cpu().double().numpy()
        pbc = batch.pbc.cpu().numpy()
        graphs = [
            self.model.graph_converter(self._structure(pos.numpy(), num.numpy(), cell, p)).to(self.device)
            for pos, num, cell, p in zip(positions, numbers, cells, pbc)
        ]
        prediction = self.model(graphs, task="efs" if compute_stress else "ef")
        out_device = batch.positions.device
        energy = (prediction["e"].detach() * batch.n_atoms.to(self.device)).to(out_device, torch.float64)
        forces = torch.cat([f.detach() for f in prediction["f"]]).to(out_device, torch.float64)
        if compute_stress:
            stress = torch.stack([s.detach() for s in prediction["s"]]).to(out_device, torch.float64) * GPA_TO_EV_PER_A3
            stress[~batch.pbc.any(dim=1)] = 0.0  # a boxed molecule has no physical stress
        else:
            stress = torch.zeros(batch.n_systems, 3, 3, dtype=torch.float64, device=out_device)
        return ForceFieldOutput(energy=energy, forces=forces, stress=stress)
