"""SevenNet-0 (weights inside the ``sevenn`` wheel) over a packed batch."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from matserve.forcefields.base import ForceField, ForceFieldOutput, WeightsInfo, sha256_file
from matserve.forcefields.boxing import molecule_box
from matserve.structures import Batch

MODEL_NAME = "7net-0"


def checkpoint_path() -> Path:
    from sevenn.util import pretrained_name_to_path

    return Path(pretrained_name_to_path(MODEL_NAME))


@cache
def sevennet_numbers() -> frozenset[int]:
    """Atomic numbers in SevenNet-0's type map (read from the checkpoint's config)."""
    from sevenn.util import load_checkpoint

    return frozenset(int(z) for z in load_checkpoint(str(checkpoint_path())).config["_type_map"])


def voigt_to_matrix(stress: torch.Tensor) -> torch.Tensor:
    """SevenNet's (B, 6) stress [xx, yy, zz, xy, yz, zx] to (B, 3, 3)."""
    xx, yy, zz, xy, yz, zx = stress.unbind(dim=1)
    return torch.stack([torch.stack([xx, xy, zx], 1), torch.stack([xy, yy, yz], 1), torch.stack([zx, yz, zz], 1)], 1)


class SevenNetForceField(ForceField):
    name = "sevennet"

    def __init__(self, device: str = "cpu"):
        from sevenn.util import load_checkpoint

        checkpoint = load_checkpoint(str(checkpoint_path()))
        self.device = torch.device(device)
        self.model = checkpoint.build_model()
        self.model.set_is_batch_data(True)
        self.model.to(self.device).eval()
        self.cutoff = float(checkpoint.config["cutoff"])
        self.supported_numbers = frozenset(int(z) for z in checkpoint.config["_type_map"])

    @property
    def weights(self) -> WeightsInfo:
        path = checkpoint_path()
        return WeightsInfo("SevenNet-0", path.name, sha256_file(path))

    def _graph(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        if not pbc.any():
            positions, cell = molecule_box(positions, self.cutoff)
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
        return AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False))

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        from torch_geometric.data import Batch as GraphBatch

        import sevenn._keys as KEY

        self.check_elements(batch.numbers)
        positions = batch.split_atoms(batch.positions.detach().cpu().double())
        numbers = batch.split_atoms(batch.numbers.cpu())
        cells = batch.cells.detach().cpu().double().numpy()
        pbc = batch.pbc.cpu().numpy()
        graphs = [self._graph(p.numpy(), n.numpy(), c, b) for p, n, c, b in zip(positions, numbers, cells, pbc)]
        data = GraphBatch.from_data_list(graphs).to(self.device)
        output = self.model(data)
        out_device = batch.positions.device
        energy = output[KEY.PRED_TOTAL_ENERGY].detach().reshape(-1).to(out_device, torch.float64)
        forces = output[KEY.PRED_FORCE].detach().to(out_device, torch.float64)
        stress = -voigt_to_matrix(output[KEY.PRED_STRESS].detach().reshape(-1, 6)).to(out_device, torch.float64)
        stress[~batch.pbc.any(dim=1)] = 0.0
        return ForceFieldOutput(energy=energy, forces=forces, stress=stress)
