"""Generator speed: the KV-cached batched sampler against the plain no-cache, batch-1 loop.

Same weights (the embedded `small` by default), same prompts (compositions from the
validation split with their Z, no space group), same seeds, so both write the same tokens
(sequence i of a batch equals `generate_reference(..., sequence=i)`). Each row runs until its
CIF ends (two newlines) or the `small` cap of 1,200 tokens. Prints generated tokens per
second for the plain loop and for the cached sampler at batch 1, 8, 16 and 32, and the ratios.

    .venv/bin/python -m bench.generate [--checkpoint PATH] [--threads 1] [--reference-prompts 4]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.evaluate import validation_prompts
from matserve.generator.sampler import SamplingParams, generate, generate_reference
from matserve.generator.service import EMBEDDED_SMALL, LIMITS
from matserve.generator.tokenizer import Tokenizer

BATCHES = (1, 8, 16, 32)


def params_for(prompts: list[list[int]], seed: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=LIMITS["small"].max_tokens - max(len(p) for p in prompts), seed=seed)


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
    prompts = [tokenizer.encode(case["prompt"]) for case in validation_prompts(max(BATCHES), args.seed)]
    print(f"weights {args.checkpoint.name}: {model.num_params():,} parameters, {args.threads} thread(s); "
          f"{len(prompts)} validation compositions, no space group")

    # The plain loop, one prompt after another, and the cached sampler at batch 1 on the same
    # prompts with the same seeds: they must write the same tokens (checked and printed).
    few = prompts[:args.reference_prompts]
    params = params_for(few, args.seed)
    seeded = [replace(params, seed=args.seed + i) for i in range(len(few))]
    start = time.perf_counter()
    reference = [generate_reference(model, p, q) for p, q in zip(few, seeded)]
    reference_s = time.perf_counter() - start
    reference_tokens = sum(len(g.tokens) for g in reference)
    rows = [("no cache, batch 1 (plain loop)", reference_tokens, reference_s)]

    start = time.perf_counter()
    single = [generate(model, [p], q)[0] for p, q in zip(few, seeded)]
    rows.append(("KV cache, batch 1", sum(len(g.tokens) for g in single), time.perf_counter() - start))
    same = [g.tokens for g in single] == [g.tokens for g in reference]
    print(f"cached sampler writes the same tokens as the plain loop: {'yes' if same else 'NO'}")

    for batch in BATCHES[1:]:
        chunk = prompts[:batch]
        start = time.perf_counter()
        out = generate(model, chunk, params_for(chunk, args.seed))
        rows.append((f"KV cache, batch {batch}", sum(len(g.tokens) for g in out), time.perf_counter() - start))

    base = reference_tokens / reference_s
    print(f"{'sampler':<32} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'x plain':>8}")
    for name, tokens, seconds in rows:
        print(f"{name:<32} {tokens:>7} {seconds:>8.2f} {tokens / seconds:>9.0f} {tokens / seconds / base:>8.1f}")


if __name__ == "__main__":
    main()
