"""ALIGNN (Choudhary & DeCost, npj Comput. Mater. 2021) in plain PyTorch, on packed graphs.

Module and parameter names are those of ``alignn.models.alignn.ALIGNN``, so a published
checkpoint's ``state_dict`` loads unchanged. Message passing uses ``index_add_`` over edge
lists instead of DGL: many crystals go through one forward pass as one packed graph, with a
per-atom ``graph_index`` (as torch-sim's ``system_idx``).

Shapes: atoms N, bonds E (directed), angles A (pairs of consecutive bonds), graphs B.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from matserve.alignn.graph import CrystalGraph


@dataclass
class ALIGNNConfig:
    """The fields of ALIGNN's own ``ALIGNNConfig`` that shape the network."""

    alignn_layers: int = 4
    gcn_layers: int = 4
    atom_input_features: int = 92
    edge_input_features: int = 80
    triplet_input_features: int = 40
    embedding_features: int = 64
    hidden_features: int = 256
    output_features: int = 1
    link: Literal["identity", "log", "logit"] = "identity"

    @classmethod
    def from_dict(cls, values: dict) -> "ALIGNNConfig":
        """From a JARVIS ``config.json`` "model" block; refuses variants this module does not build."""
        unsupported = {key: values[key] for key in ("classification", "zero_inflated") if values.get(key)}
        if values.get("extra_features", 0):
            unsupported["extra_features"] = values["extra_features"]
        if values.get("name", "alignn") != "alignn":
            unsupported["name"] = values["name"]
        if unsupported:
            raise ValueError(f"unsupported ALIGNN configuration: {unsupported}")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass
class GraphBatch:
    """Many crystal graphs packed into one: indices offset so they never meet."""

    atom_features: torch.Tensor  # (N, 92)
    edge_src: torch.Tensor  # (E,)
    edge_dst: torch.Tensor  # (E,)
    bond_lengths: torch.Tensor  # (E,)
    angle_src: torch.Tensor  # (A,) bond index
    angle_dst: torch.Tensor  # (A,) bond index
    angle_cosines: torch.Tensor  # (A,)
    graph_index: torch.Tensor  # (N,) which graph each atom belongs to
    n_graphs: int

    def to(self, device: torch.device | str) -> "GraphBatch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return GraphBatch(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()})


def pack_graphs(graphs: list[CrystalGraph], atom_features: list[torch.Tensor]) -> GraphBatch:
    """Concatenate graphs, shifting atom indices of bonds and bond indices of angles."""
    atom_offsets = np.cumsum([0] + [len(g.numbers) for g in graphs])
    bond_offsets = np.cumsum([0] + [len(g.edge_src) for g in graphs])
    return GraphBatch(
        atom_features=torch.cat(atom_features),
        edge_src=torch.cat([g.edge_src + int(o) for g, o in zip(graphs, atom_offsets)]),
        edge_dst=torch.cat([g.edge_dst + int(o) for g, o in zip(graphs, atom_offsets)]),
        bond_lengths=torch.cat([g.bond_lengths for g in graphs]),
        angle_src=torch.cat([g.angle_src + int(o) for g, o in zip(graphs, bond_offsets)]),
        angle_dst=torch.cat([g.angle_dst + int(o) for g, o in zip(graphs, bond_offsets)]),
        angle_cosines=torch.cat([g.angle_cosines for g in graphs]),
        graph_index=torch.repeat_interleave(torch.arange(len(graphs)),
                                            torch.as_tensor([len(g.numbers) for g in graphs])),
        n_graphs=len(graphs),
    )


def scatter_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    out = values.new_zeros((size, *values.shape[1:]))
    return out.index_add_(0, index, values)


class RBFExpansion(nn.Module):
    """Gaussians on evenly spaced centres; width = the centre spacing (ALIGNN's default)."""

    def __init__(self, vmin: float = 0.0, vmax: float = 8.0, bins: int = 40):
        super().__init__()
        self.register_buffer("centers", torch.linspace(vmin, vmax, bins))
        self.gamma = 1.0 / float(np.diff(self.centers.numpy()).mean())

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (distance.unsqueeze(1) - self.centers) ** 2)


class MLPLayer(nn.Module):
    """Linear, BatchNorm, SiLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution: h_i ← h_i + SiLU(BN(U h_i + Σ_j σ(e_ij) ⊙ V h_j / Σ_j σ(e_ij)))."""

    def __init__(self, input_features: int, output_features: int, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.src_gate = nn.Linear(input_features, output_features)
        self.dst_gate = nn.Linear(input_features, output_features)
        self.edge_gate = nn.Linear(input_features, output_features)
        self.bn_edges = nn.BatchNorm1d(output_features)
        self.src_update = nn.Linear(input_features, output_features)
        self.dst_update = nn.Linear(input_features, output_features)
        self.bn_nodes = nn.BatchNorm1d(output_features)

    def forward(self, src: torch.Tensor, dst: torch.Tensor, node_feats: torch.Tensor,
                edge_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_nodes = node_feats.shape[0]
        m = self.src_gate(node_feats)[src] + self.dst_gate(node_feats)[dst] + self.edge_gate(edge_feats)
        sigma = torch.sigmoid(m)
        sum_sigma_h = scatter_sum(self.dst_update(node_feats)[src] * sigma, dst, n_nodes)
        sum_sigma = scatter_sum(sigma, dst, n_nodes)
        x = self.src_update(node_feats) + sum_sigma_h / (sum_sigma + 1e-6)
        x = F.silu(self.bn_nodes(x))
        y = F.silu(self.bn_edges(m))
        if self.residual:
            x = node_feats + x
            y = edge_feats + y
        return x, y


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: a gated convolution on the atom graph, then one on the bond (line) graph."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.node_update = EdgeGatedGraphConv(in_features, out_features)
        self.edge_update = EdgeGatedGraphConv(out_features, out_features)

    def forward(self, batch: GraphBatch, x: torch.Tensor, y: torch.Tensor,
                z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, m = self.node_update(batch.edge_src, batch.edge_dst, x, y)
        y, z = self.edge_update(batch.angle_src, batch.angle_dst, m, z)
        return x, y, z


class ALIGNN(nn.Module):
    """Atom embedding, bond-length and bond-angle RBF embeddings, ALIGNN layers, gated GCN layers,
    mean over each crystal's atoms, one linear output."""

    def __init__(self, config: ALIGNNConfig = ALIGNNConfig()):
        super().__init__()
        self.config = config
        hidden, embedding = config.hidden_features, config.embedding_features
        self.atom_embedding = MLPLayer(config.atom_input_features, hidden)
        self.edge_embedding = nn.Sequential(
            RBFExpansion(vmin=0.0, vmax=8.0, bins=config.edge_input_features),
            MLPLayer(config.edge_input_features, embedding),
            MLPLayer(embedding, hidden),
        )
        self.angle_embedding = nn.Sequential(
            RBFExpansion(vmin=-1.0, vmax=1.0, bins=config.triplet_input_features),
            MLPLayer(config.triplet_input_features, embedding),
            MLPLayer(embedding, hidden),
        )
        self.alignn_layers = nn.ModuleList([ALIGNNConv(hidden, hidden) for _ in range(config.alignn_layers)])
        self.gcn_layers = nn.ModuleList([EdgeGatedGraphConv(hidden, hidden) for _ in range(config.gcn_layers)])
        self.fc = nn.Linear(hidden, config.output_features)
        if config.link == "log":
            self.fc.bias.data = torch.tensor(np.log(0.7), dtype=torch.float)  # ALIGNN's starting gap

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """(B,) predictions, or (B, output_features) when there are several outputs."""
        x = self.atom_embedding(batch.atom_features)
        y = self.edge_embedding(batch.bond_lengths)
        z = self.angle_embedding(batch.angle_cosines)
        for layer in self.alignn_layers:
            x, y, z = layer(batch, x, y, z)
        for layer in self.gcn_layers:
            x, y = layer(batch.edge_src, batch.edge_dst, x, y)
        counts = torch.bincount(batch.graph_index, minlength=batch.n_graphs).clamp(min=1).unsqueeze(1)
        pooled = scatter_sum(x, batch.graph_index, batch.n_graphs) / counts
        out = self.fc(pooled)
        if self.config.link == "log":
            out = torch.exp(out)
        elif self.config.link == "logit":
            out = torch.sigmoid(out)
        return out.squeeze(-1) if self.config.output_features == 1 else out
