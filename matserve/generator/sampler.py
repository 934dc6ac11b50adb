"""Sampling CIF text from the model: a cached, batched sampler and a plain reference loop.

`generate` runs many prompts at once. Prompts of different lengths are left-padded to one
width; each row gets its own positions (counted from its first real token) and a mask that
hides its pad slots, so a row computes what it would compute alone. A KV cache makes each
step feed one token per row, and rows that finish leave the batch.

`generate_reference` is the obvious loop, batch 1, the whole text re-fed every step. Tests
hold the two to the same tokens; benchmarks measure one against the other.

Past the model's context both go on as CrystaLLM does: each step re-reads the last
`block_size` tokens. Learned positions then shift by one every step, so nothing can be
cached: such rows leave the cached batch and continue in a batch of their own, each step a
full forward over the window.

Randomness: sequence i of a call draws from its own torch.Generator, seeded from (seed, i)
alone, one uniform number per sampled token. So a sequence's text does not depend on which
other prompts share its batch, and `generate_reference(..., sequence=i)` reproduces it.
`generate_many` puts the prompts of several requests (concurrent callers) in one batch; each
keeps its own seed, token cap, time limit, temperature and top-k, so each gets what it would
get alone. A batch whose KV cache would pass `kv_cache_bytes` is sampled in successive
chunks of rows (time limits still count from the call).
Sampling itself runs in float64 on the CPU: inverse-CDF over the top-k candidates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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

KV_CACHE_BYTES = 2 * 1024**3  # cache held at once by one batch; more rows are sampled in chunks


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 1024
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = 10  # None = the whole vocabulary
    seed: int = 0
    time_limit_s: float | None = None  # wall clock for the whole call, prefill included


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
class _Row:
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


def _sample_step(rows: list[_Row], active: list[int], logits: Tensor, results: list[Generation],
                 previous: list[int], stop_id: int) -> list[int]:
    """Pick the next token of each active row from its logits, append it, and mark the rows it
    finishes; `previous` holds each row's last token and is updated."""
    tokens = pick_tokens(logits, [rows[i].temperature for i in active], [rows[i].top_k for i in active],
                         [rows[i].generator for i in active])
    for i, token in zip(active, tokens):
        results[i].tokens.append(token)
        results[i].finish_reason = _finished(token, previous[i], len(results[i].tokens), rows[i].budget, stop_id)
        previous[i] = token
    return tokens


def generate(model: GPT, prompts: Sequence[Sequence[int]], params: SamplingParams = SamplingParams(),
             stop_id: int = NEWLINE_ID) -> list[Generation]:
    """Continue every prompt (token ids) until it stops, in one batch."""
    return generate_many(model, [SamplingRequest(prompts, params)], stop_id)[0]


def kv_cache_bytes_per_row(config: GPTConfig, element_size: int = 4) -> int:
    """Keys and values of one row over the model's whole context (float32: 4 bytes each)."""
    return 2 * config.n_layer * config.block_size * config.n_embd * element_size


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
    rows: list[_Row] = []
    for request in requests:
        params = request.params
        deadline = None if params.time_limit_s is None else start + params.time_limit_s
        generators = sequence_generators(params.seed, len(request.prompts))
        rows += [_Row(prompt, generator, params.max_new_tokens, deadline, params.temperature, params.top_k)
                 for prompt, generator in zip(request.prompts, generators)]
    chunk = max(1, kv_cache_bytes // kv_cache_bytes_per_row(model.config, model.lm_head.weight.element_size()))
    generations: list[Generation] = []
    for first in range(0, len(rows), chunk):
        generations += _generate_rows(model, rows[first:first + chunk], stop_id)
    results = []
    for request in requests:
        count = len(request.prompts)
        results.append(generations[:count])
        generations = generations[count:]
    return results


@torch.no_grad()
def _generate_rows(model: GPT, rows: list[_Row], stop_id: int) -> list[Generation]:
    """The batched, cached loop over rows, each sampled as its `_Row` says; rows that reach the
    end of the context finish in `_slide`."""
    weight = model.lm_head.weight
    block_size = model.config.block_size
    device = weight.device
    n = len(rows)
    if n == 0:
        return []
    prompts = [row.prompt for row in rows]

    lengths = torch.tensor([len(p) for p in prompts], device=device)
    width = int(lengths.max())
    pad = width - lengths  # left padding of each row
    ids = torch.zeros((n, width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
    cached_tokens = [min(row.budget, block_size - len(row.prompt)) for row in rows]  # new tokens that fit
    cache = KVCache(model.config, n, width + max(cached_tokens), weight.dtype, device)
    slots = torch.arange(cache.capacity, device=device)
    visible = slots.unsqueeze(0) >= pad.unsqueeze(1)  # (rows, slots): not padding

    # Prefill: causal attention over real tokens; a pad slot sees only itself (it must see
    # something, and nothing real ever looks at it).
    positions = (slots[:width].unsqueeze(0) - pad.unsqueeze(1)).clamp(min=0)
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    diagonal = torch.eye(width, dtype=torch.bool, device=device)
    mask = (causal & (visible[:, None, :width] | diagonal)).unsqueeze(1) if bool(pad.any()) else None
    logits = model(ids, positions=positions, mask=mask, cache=cache)[0][:, -1]

    results = [Generation() for _ in range(n)]
    previous = [p[-1] for p in prompts]
    active = list(range(n))  # which prompt each cache row holds
    sliding: list[int] = []  # prompts whose text has filled the context
    while True:
        now = time.monotonic()
        timed_out = {row for row, i in enumerate(active) if rows[i].expired(now)}
        for row in timed_out:
            results[active[row]].finish_reason = "time"
        if timed_out:
            kept = [row for row in range(len(active)) if row not in timed_out]
            if not kept:
                break
            keep = torch.tensor(kept, device=device)
            cache.keep(keep)
            pad, visible = pad[keep], visible[keep]
            logits = logits[keep]
            active = [active[row] for row in kept]
        tokens = _sample_step(rows, active, logits, results, previous, stop_id)
        sliding += [i for i in active  # unfinished, and the context is full
                    if results[i].finish_reason is None and len(results[i].tokens) == cached_tokens[i]]
        kept = [row for row, i in enumerate(active) if results[i].finish_reason is None and i not in sliding]
        if not kept:
            break
        if len(kept) < len(active):
            keep = torch.tensor(kept, device=device)
            cache.keep(keep)
            pad, visible = pad[keep], visible[keep]
            active = [active[row] for row in kept]
            tokens = [tokens[row] for row in kept]

        slot = cache.length
        step = torch.tensor(tokens, dtype=torch.long, device=device).unsqueeze(1)
        positions = (slot - pad).unsqueeze(1)
        mask = visible[:, None, None, : slot + 1] if bool(pad.any()) else None
        logits = model(step, positions=positions, mask=mask, cache=cache)[0][:, -1]
    del cache
    _slide(model, rows, results, previous, sliding, stop_id)
    return results


def _slide(model: GPT, rows: list[_Row], results: list[Generation], previous: list[int], indices: list[int],
           stop_id: int) -> None:
    """Continue these rows past the context as CrystaLLM does: each step feeds the last
    `block_size` tokens of each, in one batch, with no cache. (Called under `_generate_rows`'s
    `no_grad`.)"""
    block_size = model.config.block_size
    device = model.lm_head.weight.device
    active = list(indices)
    while active:
        now = time.monotonic()
        for i in active:
            if rows[i].expired(now):
                results[i].finish_reason = "time"
        active = [i for i in active if results[i].finish_reason is None]
        if not active:
            break
        windows = [(list(rows[i].prompt) + results[i].tokens)[-block_size:] for i in active]
        logits = model(torch.tensor(windows, dtype=torch.long, device=device))[0][:, -1]
        _sample_step(rows, active, logits, results, previous, stop_id)
        active = [i for i in active if results[i].finish_reason is None]


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
