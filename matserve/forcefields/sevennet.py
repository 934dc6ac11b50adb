"""SevenNet pretrained models (weights inside the ``sevenn`` wheel) over a packed batch."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from matserve.contract import WeightsInfo, sha256_file
from matserve.forcefields.base import ForceField, ForceFieldOutput
from matserve.forcefields.boxing import molecule_box
from matserve.structures import Batch

DEFAULT_PRETRAINED = "7net-0"


def checkpoint_path(pretrained: str = DEFAULT_PRETRAINED) -> Path:
    """A pretrained model's checkpoint inside the sevenn wheel (``7net-0``, ``7net-l3i5``, ``7net-mf-0``)."""
    from sevenn.util import pretrained_name_to_path

    return Path(pretrained_name_to_path(pretrained))


@cache
def _config(pretrained: str) -> dict:
    from sevenn.util import load_checkpoint

    return load_checkpoint(str(checkpoint_path(pretrained))).config


@cache
def sevennet_numbers(pretrained: str = DEFAULT_PRETRAINED) -> frozenset[int]:
    """Atomic numbers in a checkpoint's type map (read from its config; the model is not built)."""
    return frozenset(int(z) for z in _config(pretrained)["_type_map"])


def sevennet_modals(pretrained: str = DEFAULT_PRETRAINED) -> tuple[str, ...]:
    """The fidelity heads of a multi-fidelity checkpoint (its ``_modal_map``), empty for a single-fidelity one."""
    return tuple(_config(pretrained).get("_modal_map") or ())


def voigt_to_matrix(stress: torch.Tensor) -> torch.Tensor:
    """SevenNet's (B, 6) stress [xx, yy, zz, xy, yz, zx] to (B, 3, 3)."""
    xx, yy, zz, xy, yz, zx = stress.unbind(dim=1)
    return torch.stack([torch.stack([xx, xy, zx], 1), torch.stack([xy, yy, yz], 1), torch.stack([zx, yz, zz], 1)], 1)


class SevenNetForceField(ForceField):
    """A pretrained SevenNet model; ``modal`` picks the fidelity head of a multi-fidelity one (7net-MF-0)."""

    name = "sevennet"

    def __init__(self, pretrained: str = DEFAULT_PRETRAINED, modal: str = "", device: str = "cpu",
                 name: str = "sevennet", title: str = "SevenNet-0"):
        from sevenn.util import load_checkpoint

        checkpoint = load_checkpoint(str(checkpoint_path(pretrained)))
        self.pretrained = pretrained
        self.name = name
        self.title = title
        self.device = torch.device(device)
        self.model = checkpoint.build_model()
        self.model.set_is_batch_data(True)
        self.model.to(self.device).eval()
        self.cutoff = float(checkpoint.config["cutoff"])
        self.supported_numbers = frozenset(int(z) for z in checkpoint.config["_type_map"])
        modals = list(self.model.modal_map or ())
        if modals and modal not in modals:
            raise ValueError(f"{pretrained} is a multi-fidelity model: modal must be one of {modals}, not {modal!r}")
        if not modals and modal:
            raise ValueError(f"{pretrained} has a single fidelity; got modal {modal!r}")
        self.modal = modal

    @classmethod
    def weights_file(cls, pretrained: str = DEFAULT_PRETRAINED) -> Path:
        return checkpoint_path(pretrained)

    @classmethod
    def covered_numbers(cls, pretrained: str = DEFAULT_PRETRAINED) -> frozenset[int]:
        return sevennet_numbers(pretrained)

    @property
    def weights(self) -> WeightsInfo:
        path = checkpoint_path(self.pretrained)
        return WeightsInfo(self.title, path.name, sha256_file(path))

    def _graph(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        import sevenn._keys as KEY
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        if not pbc.any():
            positions, cell = molecule_box(positions, self.cutoff)
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
        graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False))
        if self.modal:
            graph[KEY.DATA_MODALITY] = self.modal  # collated to one name per structure, as sevenn trains
        return graph

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
