"""ALIGNN checkpoints in the JARVIS layout: a folder with ``config.json`` and ``checkpoint_*.pt``.

``config.json`` holds the training configuration with the network under ``"model"``; the
``.pt`` file is ``{"model": state_dict, ...}`` (or a bare state_dict). This is how the published
JARVIS models (e.g. ``jv_formation_energy_peratom_alignn``) are shipped, so a user can mount one
and point ``MATSERVE_ALIGNN_CHECKPOINT`` at the folder. The embedded default lives in
``weights/formation_energy/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from matserve.alignn.model import ALIGNN, ALIGNNConfig
from matserve.contract import WeightsInfo, file_weights

EMBEDDED_DIR = Path(__file__).with_name("weights") / "formation_energy"
GRAPH_SETTINGS = {"atom_features": "cgcnn", "neighbor_strategy": "k-nearest", "cutoff": 8.0, "max_neighbors": 12}


class CheckpointError(ValueError):
    """A folder that is not an ALIGNN checkpoint this module can serve."""


def checkpoint_file(folder: Path) -> Path:
    candidates = sorted(folder.glob("checkpoint_*.pt")) or sorted(folder.glob("*.pt"))
    if not candidates:
        raise CheckpointError(f"no checkpoint_*.pt in {folder}")
    final = [path for path in candidates if path.name == "checkpoint_final.pt"]
    return final[0] if final else candidates[-1]


def weights_info(folder: Path | str = "") -> WeightsInfo:
    """The served checkpoint's provenance: the embedded one, or the configured folder's."""
    folder = Path(folder) if folder else EMBEDDED_DIR
    path = checkpoint_file(folder)
    return file_weights(path, f"{'embedded' if folder == EMBEDDED_DIR else 'configured'} {folder.name}/{path.name}")


def load_checkpoint(folder: Path | str = EMBEDDED_DIR, device: str = "cpu") -> ALIGNN:
    """An ALIGNN in eval mode from a JARVIS-layout folder."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"no config.json in {folder}") from error
    for key, expected in GRAPH_SETTINGS.items():
        if key in config and config[key] != expected:
            raise CheckpointError(f"checkpoint built with {key}={config[key]!r}; matserve builds {expected!r}")
    model = ALIGNN(ALIGNNConfig.from_dict(config.get("model", config)))
    state = torch.load(checkpoint_file(folder), map_location="cpu", weights_only=True)
    state = state.get("model", state)
    model.load_state_dict({key.removeprefix("_orig_mod."): value for key, value in state.items()})
    return model.to(device).eval()


def save_checkpoint(model: ALIGNN, folder: Path, training: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {**GRAPH_SETTINGS, "model": {"name": "alignn", **asdict(model.config)}}
    if training:
        config["matserve_training"] = training
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    torch.save({"model": model.state_dict()}, folder / "checkpoint_final.pt")
