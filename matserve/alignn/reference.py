"""The alignn package's own implementation, set up to compute what ``matserve.alignn.model`` computes.

For tests and benchmarks only (needs the ``alignn`` package from requirements-dev.lock). Its DGL
model cannot run with our torch, so this is its pure-PyTorch ``ALIGNNAtomWisePure`` with the
LayerNorms it uses swapped for the BatchNorm1d of the official ALIGNN, energy-only options, and
a matserve ALIGNN's weights loaded.
"""

from __future__ import annotations

import torch

from matserve.alignn.model import ALIGNN


def _layernorm_to_batchnorm(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.LayerNorm):
            setattr(module, name, torch.nn.BatchNorm1d(child.normalized_shape[0]))
        else:
            _layernorm_to_batchnorm(child)


def reference_model(ours: ALIGNN) -> torch.nn.Module:
    """``ALIGNNAtomWisePure`` with ``ours``'s shape and weights, in eval mode."""
    from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig

    c = ours.config
    config = ALIGNNAtomWisePureConfig(
        name="alignn_atomwise_pure", alignn_layers=c.alignn_layers, gcn_layers=c.gcn_layers,
        atom_input_features=c.atom_input_features, edge_input_features=c.edge_input_features,
        triplet_input_features=c.triplet_input_features, hidden_features=c.hidden_features,
        embedding_features=c.embedding_features, output_features=c.output_features, link=c.link,
        calculate_gradient=False, gradwise_weight=0.0, energy_mult_natoms=False, use_penalty=False,
        use_zbl=False, lg_on_fly=True)
    reference = ALIGNNAtomWisePure(config)
    _layernorm_to_batchnorm(reference)
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=False)
    if missing != ["_species_table"] or unexpected:
        raise RuntimeError(f"weights do not line up: missing {missing}, unexpected {unexpected}")
    return reference.eval()
