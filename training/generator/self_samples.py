"""The generator's own valid CIFs for training compositions: data for rejection-sampling fine-tuning.

    python -m training.generator.self_samples --count 2000 --seed 1 --out .matserve/generator/self_1.npz

Prompts are built from compositions of the *train* split exactly as `evaluate` builds them from
the validation split (composition and Z, by default of the stored cell; no space group). One
CIF is sampled per prompt with the API's defaults (temperature 0.8, top-k 10, the `small`
cap), checked as `/v1/generate` checks it (`validity.judge`), and kept only when valid: its
text, prompt included and ending with the two newlines, tokenized as the real CIFs are, in a
`train.Corpus` that `train.py --extra-corpus` adds to the real CIFs. Fine-tuning on them
reinforces what the model already writes correctly (bond lengths, multiplicities that add
up to the formula). Validation compositions are never prompted, so `evaluate` stays a
held-out measure. The file is rewritten after every batch, so a stopped run keeps what it made.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from matserve.generator.checkpoint import load_checkpoint
from training.generator.evaluate import Z_FROM, sample, split_prompts
from matserve.generator.service import EMBEDDED_SMALL
from matserve.generator.tokenizer import Tokenizer
from training.generator.train import Corpus
from matserve.generator.validity import judge


def valid_samples(checkpoint: Path, cases: list[dict], batch_size: int, seed: int, out: Path) -> Corpus:
    """Sample one CIF per case as `evaluate` does, keep the valid ones, and save the growing
    corpus to `out`."""
    model = load_checkpoint(checkpoint)
    tokenizer = Tokenizer()
    ids: list[str] = []
    examples: list[np.ndarray] = []
    started = time.monotonic()
    for first in range(0, len(cases), batch_size):
        batch = cases[first:first + batch_size]
        sample(batch, model, batch_size, seed + first)  # as sample(cases, ...) would, a batch at a time
        for case in batch:
            if judge(case["generated"], case["finish"]).valid:
                ids.append(case["material_id"])
                examples.append(np.asarray(tokenizer.encode(case["generated"]), dtype=np.uint16))
        tried = first + len(batch)
        Corpus.from_examples(ids, examples).save(out, tried=tried)
        print(f"{len(ids)}/{tried} valid, {time.monotonic() - started:.0f} s", flush=True)
    return Corpus.from_examples(ids, examples)


def main(argv: list[str] | None = None) -> Corpus:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=EMBEDDED_SMALL)
    parser.add_argument("--count", type=int, default=2000, help="training compositions prompted")
    parser.add_argument("--seed", type=int, default=1, help="the compositions' order and the sampler's seeds")
    parser.add_argument("--batch", type=int, default=25, help="prompts sampled together")
    parser.add_argument("--z-from", choices=Z_FROM, default="cell",
                        help="Z of the stored cell or of the symmetrized one, as in evaluate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = split_prompts(args.count, args.seed, split="train", z_from=args.z_from)
    return valid_samples(args.checkpoint, cases, args.batch, args.seed, args.out)


if __name__ == "__main__":
    main()
