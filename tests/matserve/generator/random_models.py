"""Random GPTs for sampler tests that need text, not crystals."""

from __future__ import annotations

import torch

from matserve.generator.model import GPT, GPTConfig


def scrambled(model: GPT, std: float = 0.2) -> GPT:
    """Wider random weights: at GPT-2's init a random model just repeats its last token."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, std)
    return model.eval()


def small_random_gpt() -> GPT:
    """2 layers x 64, seeded and scrambled: the sampler and scheduler tests' model."""
    torch.manual_seed(0)
    return scrambled(GPT(GPTConfig(n_layer=2, n_head=4, n_embd=64, block_size=128)))


def chatty_random_gpt() -> GPT:
    """Four tokens only, so two newlines (token 0) in a row come soon and rows stop at different times."""
    torch.manual_seed(1)
    return scrambled(GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=96, vocab_size=4)))
