"""Sampling CIF text from the model: a cached, batched sampler and a plain reference loop.

`generate` runs many prompts at once. Prompts of different lengths are left-padded to one
width; each row gets its own positions (counted from its first real token) and a mask that
hides its pad slots, so a row computes what it would compute alone. A KV cache makes each
step feed one token per row, and rows that finish leave the batch.

`generate_reference` is the obvious loop, batch 1, the whole text re-fed every step. Tests
hold the two to the same tokens; benchmarks measure one against the other.

Randomness: sequence i of a call draws from its own torch.Generator, seeded from (seed, i)
alone, one uniform number per sampled token. So a sequence's text does not depend on which
other prompts share its batch, and `generate_reference(..., sequence=i)` reproduces it.
`generate_many` puts the prompts of several requests (concurrent callers) in one batch; each
keeps its own seed, token cap and time limit, so each gets what it would get alone.
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
from matserve.generator.model import GPT
from matserve.generator.vocab import TOKENS

NEWLINE_ID = TOKENS.index("\n")

FinishReason = Literal["stop", "length", "time"]


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
    "length": max_new_tokens, or the model's context, ran out; "time": time_limit_s passed.
    """

    tokens: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None


def sequence_generators(seed: int, n: int) -> list[torch.Generator]:
    """One CPU generator per sequence; the i-th depends only on (seed, i)."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(c.generate_state(1, np.uint64)[0])) for c in children]


def pick_tokens(logits: Tensor, params: SamplingParams, generators: Sequence[torch.Generator]) -> list[int]:
    """Next token of each row of logits (B, vocab): argmax, or a top-k, temperature draw."""
    logits = logits.detach().to("cpu", torch.float64)
    if params.temperature == 0:
        return logits.argmax(dim=-1).tolist()
    k = logits.size(-1) if params.top_k is None else min(params.top_k, logits.size(-1))
    values, candidates = logits.topk(k, dim=-1)  # sorted, largest first
    cdf = torch.softmax(values / params.temperature, dim=-1).cumsum(dim=-1)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
    choice = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).clamp(max=k - 1)
    return candidates.gather(1, choice).squeeze(1).tolist()


def _check(model: GPT, prompts: Sequence[Sequence[int]], params: SamplingParams) -> None:
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


def generate(model: GPT, prompts: Sequence[Sequence[int]], params: SamplingParams = SamplingParams(),
             stop_id: int = NEWLINE_ID) -> list[Generation]:
    """Continue every prompt (token ids) until it stops, in one batch."""
    return generate_many(model, [SamplingRequest(prompts, params)], stop_id)[0]


def generate_many(model: GPT, requests: Sequence[SamplingRequest], stop_id: int = NEWLINE_ID) -> list[list[Generation]]:
    """The prompts of several requests sampled together, one batch per (temperature, top_k) pair.

    Each request keeps its own seed and token cap, so what it gets equals
    `generate(model, request.prompts, request.params)` alone. The time limit counts from this
    call; each request's own limit ends its rows (the batch runs to the latest one).
    """
    for request in requests:
        _check(model, request.prompts, request.params)
    start = time.monotonic()
    results: list[list[Generation]] = [[] for _ in requests]
    groups: dict[tuple[float, int | None], list[int]] = {}
    for r, request in enumerate(requests):
        groups.setdefault((request.params.temperature, request.params.top_k), []).append(r)
    for members in groups.values():
        prompts, generators, budgets, deadlines = [], [], [], []
        for r in members:
            params = requests[r].params
            prompts += requests[r].prompts
            generators += sequence_generators(params.seed, len(requests[r].prompts))
            budgets += [min(params.max_new_tokens, model.config.block_size - len(p)) for p in requests[r].prompts]
            deadline = None if params.time_limit_s is None else start + params.time_limit_s
            deadlines += [deadline] * len(requests[r].prompts)
        generations = _generate_rows(model, prompts, requests[members[0]].params, generators, budgets, deadlines,
                                     stop_id)
        for r in members:
            count = len(requests[r].prompts)
            results[r], generations = generations[:count], generations[count:]
    return results


@torch.no_grad()
def _generate_rows(model: GPT, prompts: list[Sequence[int]], params: SamplingParams,
                   generators: list[torch.Generator], budgets: list[int], deadlines: list[float | None],
                   stop_id: int) -> list[Generation]:
    """The batched, cached loop: row i draws from generators[i], adds at most budgets[i] tokens
    and stops at deadlines[i]; params gives only the temperature and top_k."""
    weight = model.lm_head.weight
    device = weight.device
    n = len(prompts)
    if n == 0:
        return []

    lengths = torch.tensor([len(p) for p in prompts], device=device)
    width = int(lengths.max())
    pad = width - lengths  # left padding of each row
    ids = torch.zeros((n, width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
    cache = KVCache(model.config, n, width + max(budgets), weight.dtype, device)
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
    while True:
        now = time.monotonic()
        timed_out = {row for row, i in enumerate(active) if deadlines[i] is not None and now >= deadlines[i]}
        for row in timed_out:
            results[active[row]].finish_reason = "time"
        if timed_out:
            rows = [row for row in range(len(active)) if row not in timed_out]
            if not rows:
                break
            keep = torch.tensor(rows, device=device)
            cache.keep(keep)
            pad, visible = pad[keep], visible[keep]
            logits = logits[keep]
            active = [active[row] for row in rows]
        tokens = pick_tokens(logits, params, [generators[i] for i in active])
        for i, token in zip(active, tokens):
            results[i].tokens.append(token)
            results[i].finish_reason = _finished(token, previous[i], len(results[i].tokens), budgets[i], stop_id)
            previous[i] = token
        rows = [row for row, i in enumerate(active) if results[i].finish_reason is None]
        if not rows:
            break
        if len(rows) < len(active):
            keep = torch.tensor(rows, device=device)
            cache.keep(keep)
            pad, visible = pad[keep], visible[keep]
            active = [active[row] for row in rows]
            tokens = [tokens[row] for row in rows]

        slot = cache.length
        step = torch.tensor(tokens, dtype=torch.long, device=device).unsqueeze(1)
        positions = (slot - pad).unsqueeze(1)
        mask = visible[:, None, None, : slot + 1] if bool(pad.any()) else None
        logits = model(step, positions=positions, mask=mask, cache=cache)[0][:, -1]
    return results


@torch.no_grad()
def generate_reference(model: GPT, prompt: Sequence[int], params: SamplingParams = SamplingParams(),
                       stop_id: int = NEWLINE_ID, sequence: int = 0) -> Generation:
    """The plain loop: batch 1, no cache. `sequence` picks the random stream of that row of a
    `generate` call with the same seed."""
    _check(model, [prompt], params)
    deadline = None if params.time_limit_s is None else time.monotonic() + params.time_limit_s
    generator = sequence_generators(params.seed, sequence + 1)[sequence]
    budget = min(params.max_new_tokens, model.config.block_size - len(prompt))
    device = model.lm_head.weight.device
    ids = list(prompt)
    result = Generation()
    while result.finish_reason is None:
        if deadline is not None and time.monotonic() >= deadline:
            result.finish_reason = "time"
            break
        logits = model(torch.tensor([ids], dtype=torch.long, device=device))[0][:, -1]
        token = pick_tokens(logits, params, [generator])[0]
        result.tokens.append(token)
        result.finish_reason = _finished(token, ids[-1], len(result.tokens), budget, stop_id)
        ids.append(token)
    return result
