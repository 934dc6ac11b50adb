"""GPT-2 as in nanoGPT, the network CrystaLLM trained; parameter names match so its checkpoints load.

Learned positions, pre-LayerNorm blocks, a 4x GELU MLP and an lm_head tied to the token
embedding. The GELU is the tanh approximation: CrystaLLM's model (adapted from an early
nanoGPT) computed it that way, and its weights were trained with it.

Besides nanoGPT's plain causal forward, `forward` takes what cached, batched decoding needs:
explicit per-row positions, an attention mask, and a `KVCache` (see sampler.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn import functional as F

if TYPE_CHECKING:
    from matserve.generator.kv_cache import KVCache, LayerCache


@dataclass
class GPTConfig:
    """The `model_args` of a checkpoint."""

    block_size: int = 1024
    vocab_size: int = 371
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 512
    dropout: float = 0.0
    bias: bool = True


# CrystaLLM's published shapes.
SMALL = GPTConfig(n_layer=8, n_head=8, n_embd=512, block_size=1024)
LARGE = GPTConfig(n_layer=16, n_head=16, n_embd=1024, block_size=2048)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: LayerCache | None = None) -> Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v)  # now every key so far: (B, nh, T_past + T, hs)

        dropout = self.dropout if self.training else 0.0
        if mask is not None:  # True = may attend
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        elif k.size(2) == T:  # nothing cached before these tokens
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        elif T == 1:  # one new token sees every earlier one
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:
            raise ValueError("several new tokens after cached ones need an explicit mask")
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: LayerCache | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections into the residual stream
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: Tensor, targets: Tensor | None = None, *, positions: Tensor | None = None,
                mask: Tensor | None = None, cache: KVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, vocab) for every position, and the loss when targets are given.

        positions: (T,) or (B, T); by default the T slots after what `cache` holds.
        mask: (B, 1, T, T_past + T) bool, True where a query may attend a key; by default causal.
        cache: keys and values of earlier tokens; this call appends the new ones.
        """
        b, t = idx.size()
        if positions is None:
            start = cache.length if cache is not None else 0
            if start + t > self.config.block_size:
                raise ValueError(f"cannot forward position {start + t - 1}, block size is {self.config.block_size}")
            positions = torch.arange(start, start + t, dtype=torch.long, device=idx.device)

        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))
        for i, block in enumerate(self.transformer.h):
            x = block(x, mask, cache.layer(i) if cache is not None else None)
        if cache is not None:
            cache.advance(t)
        logits = self.lm_head(self.transformer.ln_f(x))

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss
