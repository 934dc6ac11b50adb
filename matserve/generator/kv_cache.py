"""Keys and values kept between decoding steps, so each step feeds one token, not the whole text.

All rows of a batch write at the same slot (prompts are left-padded to one width), so one
`length` serves the whole batch. Rows that finish are dropped with `keep`, which makes later
steps cheaper rather than computing dead rows to the end; `prepend` and `extend` let rows of
another cache join a running one (see sampler.DecodingBatch).
"""

from __future__ import annotations

import torch
from torch import Tensor

from matserve.generator.model import GPTConfig


class LayerCache:
    """One layer's view of a `KVCache`."""

    def __init__(self, owner: KVCache, layer: int) -> None:
        self.owner = owner
        self.layer = layer

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, n_head, T, head_size) at the next slots; return all keys and values so far."""
        start = self.owner.length
        end = start + k.size(2)
        if end > self.owner.capacity:
            raise ValueError(f"KV cache holds {self.owner.capacity} slots, {end} needed")
        keys, values = self.owner.keys[self.layer], self.owner.values[self.layer]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]


class KVCache:
    def __init__(self, config: GPTConfig, batch: int, capacity: int, dtype: torch.dtype,
                 device: torch.device | str) -> None:
        shape = (batch, config.n_head, capacity, config.n_embd // config.n_head)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.capacity = capacity
        self.length = 0  # slots filled, the same for every row

    def layer(self, index: int) -> LayerCache:
        return LayerCache(self, index)

    def advance(self, n: int) -> None:
        """Called by the model once every layer has stored its n new slots."""
        self.length += n

    def keep(self, rows: Tensor, drop: int = 0) -> None:
        """Keep only these batch rows (indices into the current batch), in this order, and drop
        the first `drop` slots (padding in every kept row)."""
        held = self.length - drop
        for store in (self.keys, self.values):
            for layer, old in enumerate(store):
                new = old.new_empty((len(rows), *old.shape[1:]))
                new[:, :, :held] = old[:, :, drop:self.length].index_select(0, rows)
                store[layer] = new
        self.length = held

    def prepend(self, n: int) -> None:
        """n empty slots before the first one: every row's text moves n slots to the right."""
        if n == 0:
            return
        if self.length + n > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} slots, {self.length + n} needed")
        for store in (self.keys, self.values):
            for layer, old in enumerate(store):
                new = torch.empty_like(old)
                new[:, :, :n] = 0  # masked, but attention multiplies them by zero: no NaN from stale memory
                new[:, :, n:n + self.length] = old[:, :, :self.length]
                store[layer] = new
        self.length += n

    def extend(self, other: KVCache) -> None:
        """Append the rows of another cache that has filled as many slots as this one."""
        if other.length != self.length:
            raise ValueError(f"cannot join a cache of {other.length} slots to one of {self.length}")
        for store, joining in ((self.keys, other.keys), (self.values, other.values)):
            for layer, (old, more) in enumerate(zip(store, joining)):
                new = old.new_empty((old.size(0) + more.size(0), *old.shape[1:]))
                new[:old.size(0), :, :self.length] = old[:, :, :self.length]
                new[old.size(0):, :, :self.length] = more[:, :, :self.length]
                store[layer] = new
