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

`--concurrent` measures instead what continuous batching is for: a short request (NaCl, Z=1)
sent `--delay` seconds into a long one (Ba2MnCr without Z, n=4: the API's 24 prompts, four
for each Z of 1, 2, 3, 4, 6, 8). Before, with call-level
batching (Triton's dynamic batcher), the short one waited for the whole long batch, then ran
alone; now the scheduler lets it join the running batch. Prints the short request's latency
and the long one's total time both ways, and checks the short one's tokens are the same.

    .venv/bin/python -m bench.generate [--checkpoint PATH] [--threads 1] [--reference-prompts 4]
    .venv/bin/python -m bench.generate --concurrent [--delay 2]
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

from matserve.generator.checkpoint import load_checkpoint
from training.generator.evaluate import split_prompts
from matserve.generator.model import GPT
from matserve.generator.prompt import build_prompt
from matserve.generator.sampler import Generation, SamplingParams, SamplingRequest, generate_many, generate_reference
from matserve.generator.scheduler import GenerationJob, GenerationScheduler
from matserve.generator.service import EMBEDDED_SMALL, LIMITS
from matserve.generator.tokenizer import Tokenizer

BATCHES = (1, 8, 16, 32)
Z_VALUES = (1, 2, 3, 4, 6, 8)  # what /v1/generate samples when the request gives no Z


def sample_batch(model: GPT, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
    """All prompts in one batch; prompt i draws from seed params.seed + i, as in the plain loop."""
    requests = [SamplingRequest([prompt], replace(params, seed=params.seed + i)) for i, prompt in enumerate(prompts)]
    return [generations[0] for generations in generate_many(model, requests)]


def call_level(model: GPT, long: SamplingRequest, short: SamplingRequest,
               delay_s: float) -> tuple[float, float, list[int]]:
    """(short latency, long total, short tokens) when a call's batch runs to its end before the next call."""
    start = time.perf_counter()
    running = threading.Thread(target=generate_many, args=(model, [long]))
    running.start()
    time.sleep(delay_s)
    arrived = time.perf_counter()
    running.join()
    long_s = time.perf_counter() - start
    (tokens,) = [g.tokens for g in generate_many(model, [short])[0]]
    return time.perf_counter() - arrived, long_s, tokens


def continuous(model: GPT, long: SamplingRequest, short: SamplingRequest,
               delay_s: float) -> tuple[float, float, list[int]]:
    """(short latency, long total, short tokens) when the short request joins the running batch."""
    scheduler = GenerationScheduler(model)
    done = {"long": threading.Event(), "short": threading.Event()}
    finished: dict[str, float] = {}
    tokens: list[int] = []

    def job(name: str, request: SamplingRequest) -> GenerationJob:
        def on_result(index: int, generation: Generation, last: bool) -> None:
            if name == "short":
                tokens.extend(generation.tokens)
            if last:
                finished[name] = time.perf_counter()
                done[name].set()
        return GenerationJob(request.prompts, request.params, on_result, on_error=print)

    scheduler.start()
    try:
        start = time.perf_counter()
        scheduler.submit(job("long", long))
        time.sleep(delay_s)
        arrived = time.perf_counter()
        scheduler.submit(job("short", short))
        done["short"].wait()
        done["long"].wait()
    finally:
        scheduler.stop()
    return finished["short"] - arrived, finished["long"] - start, tokens


def concurrent_rows(model: GPT, tokenizer: Tokenizer, params: SamplingParams, delay_s: float) -> None:
    long = SamplingRequest([tokenizer.encode(build_prompt("Ba2MnCr", z)) for z in Z_VALUES for _ in range(4)], params)
    short = SamplingRequest([tokenizer.encode(build_prompt("NaCl", 1))], replace(params, seed=params.seed + 1))
    (alone,) = generate_many(model, [short])[0]  # its solo tokens; also warms the allocator up
    print(f"a short request (NaCl Z=1) sent {delay_s:g} s into a long one (Ba2MnCr, n=4 for each Z: 24 prompts)")
    print(f"{'batching':<36} {'short latency s':>15} {'long total s':>13}")
    before = call_level(model, long, short, delay_s)
    after = continuous(model, long, short, delay_s)
    for name, (latency, total, _) in [("call-level (before)", before), ("continuous (after)", after)]:
        print(f"{name:<36} {latency:>15.2f} {total:>13.2f}")
    print(f"short request ({len(alone.tokens)} tokens): latency {before[0] / after[0]:.1f}x lower; "
          f"long request total {after[1] / before[1]:.2f}x")
    if not before[2] == after[2] == alone.tokens:
        raise SystemExit("the short request wrote other tokens than alone")
    print("the short request's tokens are its solo tokens both ways")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=EMBEDDED_SMALL)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference-prompts", type=int, default=4, help="prompts for the slow plain loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrent", action="store_true", help="a short request sent while a long one runs")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds into the long request (--concurrent)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = load_checkpoint(args.checkpoint)
    tokenizer = Tokenizer()
    if args.concurrent:
        params = SamplingParams(max_new_tokens=LIMITS["small"].max_new_tokens, seed=args.seed)
        concurrent_rows(model, tokenizer, params, args.delay)
        return
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
