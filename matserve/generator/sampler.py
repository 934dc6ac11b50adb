"""Sampling CIF text from the model: a cached, batched sampler and a plain reference loop.

`DecodingBatch` is the running batch. Prompts of different lengths are left-padded to one
width; each row gets its own positions (counted from its first real token) and a mask that
hides its pad slots, so a row computes what it would compute alone. A KV cache makes each
step feed one token per row. Rows that finish leave the batch, and new rows may join between
steps (their prompts prefilled, then decoded with the others): the generator's scheduler
keeps one such batch running for every request (see scheduler.py). `generate` runs many
prompts at once in one batch.

`generate_reference` is the obvious loop, batch 1, the whole text re-fed every step. Tests
hold the two to the same tokens; benchmarks measure one against the other.

Past the model's context both go on as CrystaLLM does: each step re-reads the last
`block_size` tokens. Learned positions then shift by one every step, so nothing can be
cached: such rows leave the cached batch and continue in a batch of their own, each step a
full forward over the window.

Randomness: sequence i of a call draws from its own torch.Generator, seeded from (seed, i)
alone, one uniform number per sampled token. So a sequence's text does not depend on which
other prompts share its batch, nor on when it joined, and `generate_reference(...,
sequence=i)` reproduces it. `generate_many` puts the prompts of several requests (concurrent
callers) in one batch; each keeps its own seed, token cap, time limit, temperature and top-k,
so each gets what it would get alone. A batch whose KV cache would pass `kv_cache_bytes` is
sampled in successive chunks of rows (time limits still count from the call).
Sampling itself runs in float64 on the CPU: inverse-CDF over the top-k candidates.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from matserve.generator.kv_cache import KVCache
from matserve.generator.model import GPT, GPTConfig
from matserve.generator.vocab import TOKENS

NEWLINE_ID = TOKENS.index("\n")

FinishReason = Literal["stop", "length", "time"]

KV_CACHE_BYTES = 2 * 1024**3  # cache held at once by one batch; more rows wait for room or are sampled in chunks


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 1024
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = 10  # None = the whole vocabulary
    seed: int = 0
    time_limit_s: float | None = None  # wall clock from the call (or the request's arrival), prefill included


@dataclass
class Generation:
    """What one prompt produced: the new token ids (prompt excluded) and why it ended.

    "stop": two newlines in a row (the CIF is complete, both newlines included);
    "length": max_new_tokens ran out; "time": time_limit_s passed.
    """

    tokens: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None


def sequence_generators(seed: int, n: int) -> list[torch.Generator]:
    """One CPU generator per sequence; the i-th depends only on (seed, i)."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(c.generate_state(1, np.uint64)[0])) for c in children]


def pick_tokens(logits: Tensor, temperatures: Sequence[float], top_ks: Sequence[int | None],
                generators: Sequence[torch.Generator]) -> list[int]:
    """Next token of each row of logits (B, vocab): the argmax where the row's temperature is 0,
    else a draw among the row's top-k at its temperature (one uniform number from its generator)."""
    logits = logits.detach().to("cpu", torch.float64)
    vocab = logits.size(-1)
    ks = torch.tensor([vocab if k is None else min(k, vocab) for k in top_ks])
    temperature = torch.tensor(temperatures, dtype=torch.float64)
    hot = temperature > 0
    values, candidates = logits.topk(int(ks.max()), dim=-1)  # sorted, largest first
    beyond_k = torch.arange(values.size(1)).unsqueeze(0) >= ks.unsqueeze(1)
    scaled = (values / torch.where(hot, temperature, 1.0).unsqueeze(1)).masked_fill(beyond_k, -torch.inf)
    cdf = torch.softmax(scaled, dim=-1).cumsum(dim=-1)
    u = torch.zeros(len(generators), dtype=torch.float64)
    for row in hot.nonzero().flatten().tolist():
        u[row] = torch.rand(1, generator=generators[row], dtype=torch.float64)[0]
    choice = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True)
    choice = torch.minimum(choice, (ks - 1).unsqueeze(1)).masked_fill(~hot.unsqueeze(1), 0)
    return candidates.gather(1, choice).squeeze(1).tolist()


def check(model: GPT, prompts: Sequence[Sequence[int]], params: SamplingParams) -> None:
    """ValueError unless the model can sample these prompts with these parameters."""
    if model.training:
        raise ValueError("sampling needs the model in eval mode (dropout off)")
    if (params.temperature < 0 or params.seed < 0 or params.max_new_tokens < 1
            or (params.top_k is not None and params.top_k < 1)):
        raise ValueError(f"bad sampling parameters: {params}")
    block_size = model.config.block_size
    for prompt in prompts:
        if not 0 < len(prompt) < block_size:
            raise ValueError(f"a prompt of {len(prompt)} tokens does not fit a context of {block_size}")


def _finished(token: int, previous: int, n_new: int, budget: int, stop_id: int) -> FinishReason | None:
    if token == stop_id and previous == stop_id:
        return "stop"
    if n_new >= budget:
        return "length"
    return None


@dataclass(frozen=True)
class SamplingRequest:
    """The prompts of one caller and how to sample them (see `generate_many`)."""

    prompts: Sequence[Sequence[int]]
    params: SamplingParams = SamplingParams()


@dataclass(frozen=True)
class Row:
    """One prompt of a batch and everything that is its own: random stream, token budget,
    deadline (monotonic clock), temperature and top-k."""

    prompt: Sequence[int]
    generator: torch.Generator
    budget: int
    deadline: float | None
    temperature: float
    top_k: int | None

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


def request_rows(request: SamplingRequest, start: float) -> list[Row]:
    """The rows of one request; its time limit counts from `start` (monotonic clock)."""
    params = request.params
    deadline = None if params.time_limit_s is None else start + params.time_limit_s
    generators = sequence_generators(params.seed, len(request.prompts))
    return [Row(prompt, generator, params.max_new_tokens, deadline, params.temperature, params.top_k)
            for prompt, generator in zip(request.prompts, generators)]


@dataclass(eq=False)
class _Sequence:
    """A row in a `DecodingBatch`: the caller's key, what it has produced, its last token, and
    how many new tokens fit the context (past them it slides)."""

    key: Hashable
    row: Row
    cached_tokens: int
    result: Generation = field(default_factory=Generation)
    previous: int = field(init=False)

    def __post_init__(self) -> None:
        self.previous = self.row.prompt[-1]

    @property
    def done(self) -> bool:
        return self.result.finish_reason is not None


def _sample_step(sequences: list[_Sequence], logits: Tensor, stop_id: int) -> None:
    """Pick the next token of each sequence from its row of logits, append it, and mark the
    sequences it finishes."""
    tokens = pick_tokens(logits, [s.row.temperature for s in sequences], [s.row.top_k for s in sequences],
                         [s.row.generator for s in sequences])
    for s, token in zip(sequences, tokens):
        s.result.tokens.append(token)
        s.result.finish_reason = _finished(token, s.previous, len(s.result.tokens), s.row.budget, stop_id)
        s.previous = token


class DecodingBatch:
    """One running batch of sequences that join and leave between steps.

    `join` prefills newcomers (left-padded among themselves) in a cache of their own and merges
    it into the running one: whichever is shorter is padded on the left, so all rows still write
    the same next slot. Every `step` samples one token for each sequence and feeds them all in
    one forward; a sequence that ends (stop, length, time) leaves at once, and slots that are
    padding in every row left are dropped, so the cache never spans more than the context.
    Sequences whose text fills the context leave the cache and slide (a full forward over the
    last `block_size` tokens each step, in a batch of their own).
    """

    def __init__(self, model: GPT, stop_id: int = NEWLINE_ID) -> None:
        self.model = model
        self.stop_id = stop_id
        self.block_size = model.config.block_size
        self.device = model.lm_head.weight.device
        self.cached: list[_Sequence] = []  # in cache-row order
        self.sliding: list[_Sequence] = []
        self.cache: KVCache | None = None
        self.pad = torch.zeros(0, dtype=torch.long, device=self.device)  # left padding of each cached row
        self.logits: Tensor | None = None  # (cached rows, vocab): each cached row's next-token logits

    def __len__(self) -> int:
        return len(self.cached) + len(self.sliding)

    @torch.no_grad()
    def join(self, rows: Sequence[tuple[Hashable, Row]]) -> None:
        """Prefill these (key, row) pairs; they are sampled from the next step on."""
        if not rows:
            return
        fresh = [_Sequence(key, row, min(row.budget, self.block_size - len(row.prompt))) for key, row in rows]
        cache, pad, logits = self._prefill([s.row.prompt for s in fresh])
        if self.cache is None:
            self.cache, self.pad, self.logits = cache, pad, logits
        else:
            width = max(self.cache.length, cache.length)
            old_shift, new_shift = width - self.cache.length, width - cache.length
            self.cache.prepend(old_shift)
            cache.prepend(new_shift)
            self.cache.extend(cache)
            self.pad = torch.cat([self.pad + old_shift, pad + new_shift])
            self.logits = torch.cat([self.logits, logits])
        self.cached += fresh

    def remove(self, keys: set[Hashable]) -> None:
        """Drop these sequences (a caller that went away) at once."""
        self.sliding = [s for s in self.sliding if s.key not in keys]
        self._keep([i for i, s in enumerate(self.cached) if s.key not in keys])

    @torch.no_grad()
    def step(self) -> list[tuple[Hashable, Generation]]:
        """One new token for every sequence; returns (key, result) of those that ended in it."""
        now = time.monotonic()
        everyone = self.cached + self.sliding
        for s in everyone:
            if s.row.expired(now):
                s.result.finish_reason = "time"
        self._keep([i for i, s in enumerate(self.cached) if not s.done])
        self.sliding = [s for s in self.sliding if not s.done]
        if self.cached:
            _sample_step(self.cached, self.logits, self.stop_id)
            self.logits = None
        if self.sliding:
            windows = [(list(s.row.prompt) + s.result.tokens)[-self.block_size:] for s in self.sliding]
            logits = self.model(torch.tensor(windows, dtype=torch.long, device=self.device))[0][:, -1]
            _sample_step(self.sliding, logits, self.stop_id)
        full = [s for s in self.cached if not s.done and len(s.result.tokens) == s.cached_tokens]
        self.sliding = [s for s in self.sliding if not s.done] + full
        self._keep([i for i, s in enumerate(self.cached) if not s.done and s not in full])
        if self.cached:
            self._feed()
        return [(s.key, s.result) for s in everyone if s.done]

    def _prefill(self, prompts: list[Sequence[int]]) -> tuple[KVCache, Tensor, Tensor]:
        """A cache of these prompts (left-padded to one width), their padding, and their
        next-token logits. A pad slot sees only itself (it must see something, and nothing real
        ever looks at it)."""
        n, device = len(prompts), self.device
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        width = int(lengths.max())
        pad = width - lengths
        ids = torch.zeros((n, width), dtype=torch.long, device=device)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        cache = KVCache(self.model.config, n, self.block_size, self.model.lm_head.weight.dtype, device)
        slots = torch.arange(width, device=device)
        positions = (slots.unsqueeze(0) - pad.unsqueeze(1)).clamp(min=0)
        visible = slots.unsqueeze(0) >= pad.unsqueeze(1)
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        diagonal = torch.eye(width, dtype=torch.bool, device=device)
        mask = (causal & (visible[:, None, :] | diagonal)).unsqueeze(1) if bool(pad.any()) else None
        logits = self.model(ids, positions=positions, mask=mask, cache=cache)[0][:, -1]
        return cache, pad, logits

    def _feed(self) -> None:
        """Feed every cached row its last token: one slot more in the cache, new logits."""
        slot = self.cache.length
        step = torch.tensor([s.previous for s in self.cached], dtype=torch.long, device=self.device).unsqueeze(1)
        positions = (slot - self.pad).unsqueeze(1)
        visible = torch.arange(slot + 1, device=self.device).unsqueeze(0) >= self.pad.unsqueeze(1)
        mask = visible[:, None, None, :] if bool(self.pad.any()) else None
        self.logits = self.model(step, positions=positions, mask=mask, cache=self.cache)[0][:, -1]

    def _keep(self, indices: list[int]) -> None:
        """Keep these cached rows, in this order, and drop the slots that are padding in all of them."""
        if len(indices) == len(self.cached):
            return
        self.cached = [self.cached[i] for i in indices]
        if not indices:
            self.cache, self.logits = None, None
            self.pad = self.pad[:0]
            return
        keep = torch.tensor(indices, device=self.device)
        pad = self.pad[keep]
        drop = int(pad.min())
        self.cache.keep(keep, drop)
        self.pad = pad - drop
        if self.logits is not None:
            self.logits = self.logits[keep]


def generate(model: GPT, prompts: Sequence[Sequence[int]], params: SamplingParams = SamplingParams(),
             stop_id: int = NEWLINE_ID) -> list[Generation]:
    """Continue every prompt (token ids) until it stops, in one batch."""
    return generate_many(model, [SamplingRequest(prompts, params)], stop_id)[0]


def kv_cache_bytes_per_row(config: GPTConfig, element_size: int = 4) -> int:
    """Keys and values of one row over the model's whole context (float32: 4 bytes each)."""
    return 2 * config.n_layer * config.block_size * config.n_embd * element_size


def rows_that_fit(model: GPT, kv_cache_bytes: int) -> int:
    """How many rows a batch may hold within `kv_cache_bytes` of cache (at least one)."""
    return max(1, kv_cache_bytes // kv_cache_bytes_per_row(model.config, model.lm_head.weight.element_size()))


def generate_many(model: GPT, requests: Sequence[SamplingRequest], stop_id: int = NEWLINE_ID,
                  kv_cache_bytes: int = KV_CACHE_BYTES) -> list[list[Generation]]:
    """The prompts of several requests sampled together in one batch.

    Each request keeps its own seed, token cap, temperature and top-k, so what it gets equals
    `generate(model, request.prompts, request.params)` alone. Its time limit counts from this
    call and ends only its own rows. At most `kv_cache_bytes` of cache is held at once: more
    rows than that fit are sampled in successive chunks, in request order.
    """
    for request in requests:
        check(model, request.prompts, request.params)
    start = time.monotonic()
    rows = [row for request in requests for row in request_rows(request, start)]
    chunk = rows_that_fit(model, kv_cache_bytes)
    generations: list[Generation] = []
    for first in range(0, len(rows), chunk):
        generations += _generate_rows(model, rows[first:first + chunk], stop_id)
    results = []
    for request in requests:
        count = len(request.prompts)
        results.append(generations[:count])
        generations = generations[count:]
    return results


def _generate_rows(model: GPT, rows: list[Row], stop_id: int) -> list[Generation]:
    """These rows in one `DecodingBatch`, stepped until every one has ended."""
    batch = DecodingBatch(model, stop_id)
    batch.join(list(enumerate(rows)))
    results: dict[Hashable, Generation] = {}
    while batch:
        results.update(batch.step())
    return [results[i] for i in range(len(rows))]


@torch.no_grad()
def generate_reference(model: GPT, prompt: Sequence[int], params: SamplingParams = SamplingParams(),
                       stop_id: int = NEWLINE_ID, sequence: int = 0) -> Generation:
    """The plain loop: batch 1, no cache. `sequence` picks the random stream of that row of a
    `generate` call with the same seed."""
    check(model, [prompt], params)
    deadline = None if params.time_limit_s is None else time.monotonic() + params.time_limit_s
    generator = sequence_generators(params.seed, sequence + 1)[sequence]
    block_size = model.config.block_size
    device = model.lm_head.weight.device
    ids = list(prompt)
    result = Generation()
    while result.finish_reason is None:
        if deadline is not None and time.monotonic() >= deadline:
            result.finish_reason = "time"
            break
        logits = model(torch.tensor([ids[-block_size:]], dtype=torch.long, device=device))[0][:, -1]
        token = pick_tokens(logits, [params.temperature], [params.top_k], [generator])[0]
        result.tokens.append(token)
        result.finish_reason = _finished(token, ids[-1], len(result.tokens), params.max_new_tokens, stop_id)
        ids.append(token)
    return result
