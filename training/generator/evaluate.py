"""Validity rate of a generator checkpoint (by default the embedded `small`) on held-out compositions.

    python -m training.generator.evaluate [--count 200] [--n 1] [--seed 0] [--checkpoint PATH]

Takes `--count` structures from a seeded shuffle of the validation split of
`mp_cgcnn_36k.csv.gz`; each gives a prompt of its composition and Z (formula units in the
stored cell; `--z-from symmetrized`: of the symmetrized cell, as in the training CIFs), no
space group, as a CrystaLLM API request `{"comp", "z"}` would. One CIF is sampled per
prompt (n=1; temperature 0.8 unless `--temperature`, top-k 10, the `small` cap of 1,200
new tokens), then post-processed and checked as `/v1/generate` does (`validity.judge`).
Prints the rate, the failed checks, and the rate by the number of atoms in the prompt's
cell (validity falls steeply with it).
With `--n N`, N candidates are sampled per prompt and a composition counts as solved when
one of them is valid, as `/v1/generate` with `"n": N` returns the first valid candidate.
With `--reference`, nothing is sampled: the validation CIFs themselves, written as
CrystaLLM writes them, are checked, which is the rate a perfect generator would reach.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
from pymatgen.core import Composition, Structure

from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.cif_format import to_crystallm_cif
from matserve.generator.model import GPT
from matserve.generator.prompt import build_prompt
from matserve.generator.sampler import SamplingParams, generate
from matserve.generator.service import EMBEDDED_SMALL, LIMITS
from matserve.generator.tokenizer import Tokenizer
from training.generator.train import split_ids
from matserve.generator.validity import judge
from training.shared_data import MP_SPLITS, MP_STRUCTURES

Z_FROM = ("cell", "symmetrized")  # where a prompt's Z comes from: the stored cell or the symmetrized one
CELL_SIZE_BINS = (4, 8, 16, 32)  # upper ends of the atoms-per-cell bins validity is broken down by


def cell_size_bin(atoms: int) -> str:
    """The bin of CELL_SIZE_BINS a cell of this many atoms falls in: "1-4", "5-8", ..., "33+"."""
    low = 1
    for high in CELL_SIZE_BINS:
        if atoms <= high:
            return f"{low}-{high}"
        low = high + 1
    return f"{low}+"


def validity_by_cell_atoms(cases: list[dict]) -> dict[str, dict[str, int]]:
    """{"1-4": {"valid": v, "of": n}, ...}: checked candidates by the atoms in their prompt's cell,
    bins in size order, empty bins left out."""
    bins = [cell_size_bin(high) for high in CELL_SIZE_BINS] + [cell_size_bin(CELL_SIZE_BINS[-1] + 1)]
    counts = {name: {"valid": 0, "of": 0} for name in bins}
    for case in cases:
        count = counts[cell_size_bin(case["atoms"])]
        count["valid"] += case["valid"]
        count["of"] += 1
    return {name: count for name, count in counts.items() if count["of"]}


def formula_units(crystallm_cif: str) -> int:
    """Z of a CrystaLLM CIF's cell, read from its `data_` line (the cell composition)."""
    data_line = crystallm_cif.split("\n", 1)[0]
    return int(Composition(data_line.removeprefix("data_")).get_reduced_composition_and_factor()[1])


def symmetrized_z(structure: Structure) -> int:
    """Formula units in the cell CrystaLLM's CIF of this structure has (the symmetrized,
    conventional cell its training text would show), which can exceed the stored cell's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return formula_units(to_crystallm_cif(structure))


def split_prompts(count: int, seed: int, split: str = "val", csv: Path = MP_STRUCTURES, splits: Path = MP_SPLITS,
                  z_from: str = "cell", with_reference: bool = False) -> list[dict]:
    """`count` compositions of a split (by default the held-out one) as {"material_id", "comp",
    "z", "atoms", "prompt"}, in a seeded order ("atoms": in the prompt's cell).

    Z is that of the stored cell (`z_from="cell"`) or of the symmetrized cell ("symmetrized").
    `with_reference` adds "reference": the structure itself as CrystaLLM training text."""
    ids = split_ids(splits, split)
    random.Random(seed).shuffle(ids)
    frame = pd.read_csv(csv, usecols=["material_id", "cif"]).set_index("material_id")
    out = []
    for material_id in ids:
        if material_id not in frame.index:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(frame.loc[material_id, "cif"], fmt="cif")
            # The training text of this crystal, written only when Z or the reference needs it.
            reference = to_crystallm_cif(structure) if with_reference or z_from == "symmetrized" else None
        reduced, z = structure.composition.get_reduced_composition_and_factor()
        comp = "".join(f"{element}{int(amount)}" for element, amount in reduced.items())
        if z_from == "symmetrized":
            z = formula_units(reference)
        try:
            prompt = build_prompt(comp, int(z))
        except ValueError:  # an element outside the vocabulary
            continue
        out.append({"material_id": material_id, "comp": comp, "z": int(z), "atoms": int(reduced.num_atoms * z),
                    "prompt": prompt})
        if with_reference:
            out[-1]["reference"] = reference
        if len(out) == count:
            break
    return out


def sample(cases: list[dict], model: GPT, batch_size: int, seed: int,
           temperature: float = SamplingParams.temperature,
           max_new_tokens: int = LIMITS["small"].max_new_tokens) -> None:
    """Add "generated", "finish" and "tokens" to each case: one CIF sampled from its prompt (at most
    ``max_new_tokens`` after it, the API's cap by default)."""
    tokenizer = Tokenizer()
    for first in range(0, len(cases), batch_size):
        batch = cases[first:first + batch_size]
        encoded = [tokenizer.encode(case["prompt"]) for case in batch]
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + first)
        for case, prompt, generation in zip(batch, encoded, generate(model, encoded, params)):
            case["generated"] = case["prompt"] + tokenizer.decode(generation.tokens)
            case["finish"] = generation.finish_reason
            case["tokens"] = len(prompt) + len(generation.tokens)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=EMBEDDED_SMALL)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=1, help="candidates sampled per composition")
    parser.add_argument("--z-from", choices=Z_FROM, default="cell",
                        help="Z of the stored cell, or of the symmetrized cell the training CIFs show")
    parser.add_argument("--reference", action="store_true",
                        help="check the validation CIFs themselves instead of sampling: what the checks "
                             "let a perfect generator reach")
    parser.add_argument("--temperature", type=float, default=SamplingParams.temperature,
                        help="sampling temperature (top-k stays 10)")
    parser.add_argument("--batch", type=int, default=25, help="prompts sampled together")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write every generation and its checks (JSON)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    compositions = split_prompts(args.count, args.seed, z_from=args.z_from, with_reference=args.reference)
    cases = [dict(case, candidate=k) for case in compositions for k in range(args.n)]
    started = time.monotonic()
    if args.reference:
        tokenizer = Tokenizer()
        for case in cases:
            case.update(generated=case["reference"], finish="stop", tokens=len(tokenizer.encode(case["reference"])))
    else:
        sample(cases, load_checkpoint(args.checkpoint), args.batch, args.seed, args.temperature)
    sampled = time.monotonic()
    for case in cases:
        judged = judge(case["generated"], case["finish"])
        case["valid"], case["messages"] = judged.valid, list(judged.messages)
    checked = time.monotonic()

    failures = Counter(message.split(":")[0] for case in cases for message in case["messages"])
    valid = sum(case["valid"] for case in cases)
    solved = len({case["material_id"] for case in cases if case["valid"]})
    summary = {
        "checkpoint": "reference CIFs" if args.reference else str(args.checkpoint),
        "compositions": len(compositions),
        "candidates_per_composition": args.n,
        "valid": valid,
        "validity_rate": valid / len(cases),
        "compositions_with_a_valid_candidate": solved,
        "stopped": sum(case["finish"] == "stop" for case in cases),
        "failed_checks": dict(failures.most_common()),
        "validity_by_cell_atoms": validity_by_cell_atoms(cases),
        "sampling_s": round(sampled - started, 1),
        "checking_s": round(checked - sampled, 1),
        "seed": args.seed,
        "z_from": args.z_from,
        "temperature": None if args.reference else args.temperature,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(cases, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"validity rate: {valid}/{len(cases)} = {valid / len(cases):.3f}")
    print("by atoms in the cell: " + ", ".join(f"{size} {count['valid']}/{count['of']}"
                                               for size, count in summary["validity_by_cell_atoms"].items()))
    if args.n > 1:
        print(f"compositions with a valid candidate of {args.n}: {solved}/{len(compositions)} "
              f"= {solved / len(compositions):.3f}")
    return summary


if __name__ == "__main__":
    main()
