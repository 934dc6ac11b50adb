"""A MACE model from a user-mounted file (``MATSERVE_FORCEFIELD_MODEL``) over a packed batch.

The file is what MACE-MP/MPA releases ship: a whole ``torch.nn.Module`` pickled with ``torch.save(model)``
(a ``.model`` file); a TorchScript file (``torch.jit.save``) loads too. Unpickling runs code from the
file, so only mount files you trust. Nothing is downloaded: without a path the model does not load.

Each structure becomes MACE's own ``AtomicData`` (its matscipy neighbour list, as ``MACECalculator``
builds it), the structures are collated with MACE's ``torch_geometric`` batching and the model runs
once on the whole batch. Molecules (no periodic direction) go in as MACE takes them, unboxed: its
neighbour list handles open boundaries; their stress is zero.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from matserve.contract import WeightsInfo, sha256_file
from matserve.forcefields.base import ForceField, ForceFieldOutput
from matserve.structures import Batch

SETTING = "MATSERVE_FORCEFIELD_MODEL"


def model_file(model_path: str | Path = "") -> Path:
    """The mounted model file, or a ValueError that says which setting to fill."""
    if not str(model_path or "").strip():
        raise ValueError(f"force field 'mace' needs a model file: set {SETTING} to the path of a MACE "
                         f".model file (e.g. mounted on the model-cache volume); nothing is downloaded")
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ValueError(f"{SETTING}={str(model_path)!r}: no such MACE model file")
    return path


def import_mace() -> None:
    """Import the parts of mace-torch used here, undoing the process-wide TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
    that ``import mace`` sets (it would turn off ``weights_only`` for every other torch.load in the server)."""
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(key)
    try:
        import mace.data  # noqa: F401
        import mace.modules  # noqa: F401  (the classes a pickled model names)
        import mace.tools  # noqa: F401
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def is_torchscript(path: Path) -> bool:
    """A ``torch.jit.save`` archive (it holds constants.pkl); ``torch.save`` writes a zip without one."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def load_model(model_path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model in ``model_path`` on ``device``: a pickled module (MACE's release format) or TorchScript.

    The pickle is loaded with ``weights_only=False``: it is a whole module, which runs code from the file.
    """
    path = model_file(model_path)
    import_mace()
    try:
        if is_torchscript(path):
            model = torch.jit.load(str(path), map_location=device)
        else:
            model = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, OSError, EOFError, ValueError, AttributeError, ImportError, pickle.UnpicklingError) as error:
        raise ValueError(f"{SETTING}={str(model_path)!r} is not a readable MACE model file: {error}") from error
    if isinstance(model, dict) or not isinstance(model, torch.nn.Module) or not hasattr(model, "atomic_numbers"):
        raise ValueError(f"{SETTING}={str(model_path)!r} holds no MACE model (a module with atomic_numbers and "
                         f"r_max, saved with torch.save(model)); a state dict or training checkpoint is not enough")
    return model


@cache
def _file_numbers(path: str, size: int, mtime: float) -> frozenset[int]:
    return frozenset(int(z) for z in load_model(path, "cpu").atomic_numbers.tolist())


def mace_numbers(model_path: str | Path) -> frozenset[int]:
    """Atomic numbers the model in the file covers (its ``atomic_numbers`` buffer), cached per file version."""
    path = model_file(model_path)
    stat = path.stat()
    return _file_numbers(str(path.resolve()), stat.st_size, stat.st_mtime)


def _default_head(heads: list[str]) -> str:
    """The head ``MACECalculator`` uses without a ``head`` argument: the only one, else the one named default."""
    if len(heads) == 1:
        return heads[0]
    for head in heads:
        if head.lower() == "default":
            return head
    raise ValueError(f"the MACE model has heads {heads} and none is named 'default'; multi-head MACE models "
                     f"are not served")


class MACEForceField(ForceField):
    """A MACE model read from a file; the model keeps the dtype it was saved in."""

    name = "mace"

    def __init__(self, model_path: str = "", device: str = "cpu", name: str = "mace", title: str = "MACE"):
        self.path = model_file(model_path)
        self.name = name
        self.title = title
        self.device = torch.device(device)
        self.model = load_model(self.path, self.device)
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.dtype = next(self.model.parameters()).dtype
        self.cutoff = float(self.model.r_max)
        self.atomic_numbers = [int(z) for z in self.model.atomic_numbers.tolist()]
        self.supported_numbers = frozenset(self.atomic_numbers)
        self.heads = list(getattr(self.model, "heads", None) or ["Default"])
        self.head = _default_head(self.heads)

    @classmethod
    def weights_file(cls, model_path: str = "") -> Path:
        return model_file(model_path)

    @classmethod
    def covered_numbers(cls, model_path: str = "") -> frozenset[int]:
        return mace_numbers(model_path)

    @property
    def weights(self) -> WeightsInfo:
        return WeightsInfo(self.title, self.path.name, sha256_file(self.path))

    def _graph(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray, z_table):
        from mace import data as mace_data

        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
        config = mace_data.config_from_atoms(atoms, key_specification=mace_data.KeySpecification(),
                                             head_name=self.head)
        return mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=self.cutoff, heads=self.heads)

    def __call__(self, batch: Batch, compute_stress: bool = True) -> ForceFieldOutput:
        from mace.tools import torch_geometric, torch_tools, utils

        self.check_elements(batch.numbers)
        z_table = utils.AtomicNumberTable(self.atomic_numbers)
        positions = batch.split_atoms(batch.positions.detach().cpu().double())
        numbers = batch.split_atoms(batch.numbers.cpu())
        cells = batch.cells.detach().cpu().double().numpy()
        pbc = batch.pbc.cpu().numpy()
        with torch_tools.default_dtype(torch.float64):  # MACE builds its tensors in the default dtype
            graphs = [self._graph(p.numpy(), n.numpy(), c, b, z_table)
                      for p, n, c, b in zip(positions, numbers, cells, pbc)]
        data = torch_geometric.Batch.from_data_list(graphs).to(self.device)
        inputs = {key: value.to(self.dtype) if torch.is_tensor(value) and torch.is_floating_point(value) else value
                  for key, value in data.to_dict().items()}
        output = self.model(inputs, compute_stress=compute_stress, training=False)
        out_device = batch.positions.device
        energy = output["energy"].detach().reshape(-1).to(out_device, torch.float64)
        forces = output["forces"].detach().to(out_device, torch.float64)
        if compute_stress and output.get("stress") is not None:
            stress = output["stress"].detach().reshape(-1, 3, 3).to(out_device, torch.float64)  # ASE's sign
        else:
            stress = torch.zeros((batch.n_systems, 3, 3), dtype=torch.float64, device=out_device)
        stress[~batch.pbc.any(dim=1)] = 0.0
        return ForceFieldOutput(energy=energy, forces=forces, stress=stress)
