"""Generator speed: the KV-cached batched sampler against the plain no-cache, batch-1 loop.

Same weights (the embedded `small` by default), same prompts (compositions from the
validation split with their Z, no space group), same sampling parameters; prompt i always
draws from the seed `--seed` + i, in the plain loop and in every batch, so the tokens must be
the same: the first `--reference-prompts` rows of every run are checked against the plain
loop (the script fails if one differs). Each row runs until its CIF ends (two newlines) or
the `small` cap of 1,200 new tokens (past the 1,024-token context over a sliding window,
as CrystaLLM does). Prints generated tokens per second for the plain loop and for the
cached sampler at batch 1, 8, 16 and 32, and the ratios. The plain loop's rate is measured
on the first `--reference-prompts` prompts only (all 32 would take about 14 minutes with the
embedded weights: some 16,000 tokens at 19 tokens/s).

    .venv/bin/python -m bench.generate [--checkpoint PATH] [--threads 1] [--reference-prompts 4]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.evaluate import split_prompts
from matserve.generator.model import GPT
from matserve.generator.sampler import Generation, SamplingParams, SamplingRequest, generate_many, generate_reference
from matserve.generator.service import EMBEDDED_SMALL, LIMITS
from matserve.generator.tokenizer import Tokenizer

BATCHES = (1, 8, 16, 32)


def sample_batch(model: GPT, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
    """All prompts in one batch; prompt i draws from seed params.seed + i, as in the plain loop."""
    requests = [SamplingRequest([prompt], replace(params, seed=params.seed + i)) for i, prompt in enumerate(prompts)]
    return [generations[0] for generations in generate_many(model, requests)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=EMBEDDED_SMALL)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference-prompts", type=int, default=4, help="prompts for the slow plain loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = load_checkpoint(args.checkpoint)
    tokenizer = Tokenizer()
    prompts = [tokenizer.encode(case["prompt"]) for case in split_prompts(max(BATCHES), args.seed)]
    params = SamplingParams(max_new_tokens=LIMITS["small"].max_new_tokens, seed=args.seed)
    print(f"weights {args.checkpoint.name}: {model.num_params():,} parameters, {args.threads} thread(s); "
          f"{len(prompts)} validation compositions, no space group")

    few = prompts[:args.reference_prompts]
    start = time.perf_counter()
    reference = [generate_reference(model, p, replace(params, seed=args.seed + i)) for i, p in enumerate(few)]
    reference_s = time.perf_counter() - start
    reference_tokens = sum(len(g.tokens) for g in reference)
    rows = [("no cache, batch 1 (plain loop)", reference_tokens, reference_s)]

    start = time.perf_counter()
    single = [sample_batch(model, [p], replace(params, seed=args.seed + i))[0] for i, p in enumerate(few)]
    rows.append(("KV cache, batch 1", sum(len(g.tokens) for g in single), time.perf_counter() - start))
    runs = {"batch 1": single}
    for batch in BATCHES[1:]:
        start = time.perf_counter()
        out = sample_batch(model, prompts[:batch], params)
        rows.append((f"KV cache, batch {batch}", sum(len(g.tokens) for g in out), time.perf_counter() - start))
        runs[f"batch {batch}"] = out

    base = reference_tokens / reference_s
    print(f"{'sampler':<32} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'x plain':>8}")
    for name, tokens, seconds in rows:
        print(f"{name:<32} {tokens:>7} {seconds:>8.2f} {tokens / seconds:>9.0f} {tokens / seconds / base:>8.1f}")
    differing = [name for name, out in runs.items()
                 if [g.tokens for g in out[:len(few)]] != [g.tokens for g in reference]]
    if differing:
        raise SystemExit(f"the cached sampler wrote other tokens than the plain loop at {', '.join(differing)}")
    print(f"the first {len(few)} rows of every batch are the plain loop's tokens")


if __name__ == "__main__":
    main()
