"""Random GPTs for sampler tests that need text, not crystals."""

from __future__ import annotations

import torch

from matserve.generator.model import GPT


def scrambled(model: GPT, std: float = 0.2) -> GPT:
    """Wider random weights: at GPT-2's init a random model just repeats its last token."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, std)
    return model.eval()
