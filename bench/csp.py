"""Crystal-structure prediction: how often the generator's answer is the true structure.

    .venv/bin/python -m bench.csp [--count 100] [--seed 0] [--candidates 20] [--served-n 16] [--group 2]
        [--max-steps 500] [--out outcomes.jsonl] [--no-relax] [--checkpoint CKPT] [--threads 2]

`--out` keeps each composition's outcome as it is done, and a rerun with the same file goes
on where it stopped (the same groups and seeds). `--no-relax` samples and matches raw
candidates only, and `--checkpoint` names another generator: together they compare trained
models quickly (training-data augmentation, say).

Compositions: the validation split of `mp_cgcnn_36k`, in a seeded order, keeping those whose
stored cell has at most `--max-atoms` (20, MP-20's limit) and whose reduced formula occurs
nowhere in the training split. Each is prompted as a CrystaLLM API request would be: the
composition and the Z of the stored cell, no space group. `--candidates` texts are sampled
per composition (temperature 0.8, top-k 10, the `small` cap), each judged as `/v1/generate`
judges it, and every one that parses with the right composition is relaxed, cell included,
and ranked, as `/v1/generate` with `"relax": true` does.

It runs the service's code in-process, without Triton: the prompts, judging, relaxation
targets, the distinct structures relaxed once each, relaxed CIFs and ranking of `matserve.generator.candidates` / `.relaxed` (what the
route calls), the generator's batched, KV-cached sampler (`sampler.generate_many`, on the
`DecodingBatch` the Triton model's scheduler loop runs; temperature 0.8, top-k 10, the
`small` cap of 1,200 new tokens, but not its 60 s time limit, which on a loaded CPU cuts
texts short and would measure the machine, not the model) and the force field's `Relaxer`
(`relax.relax`, which the Triton model's scheduler loop steps) with the route's options.

A candidate matches when pymatgen's StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10) fits
it to the stored structure. Printed, in one run:
- match@1, @8, @20 of the raw candidates in sampling order (match@1: today's answer, n 1);
- match@1, @8, @20 of the relaxed structures in ranked order (all candidates);
- the served answer: the first of the ranked first `--served-n` candidates (n 16, relax);
- the share of candidates valid as generated and after relaxation, the share with the right
  composition, and seconds per composition (sampling, relaxation, checks and matching).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from matserve.forcefields import ForceField, entry, load_forcefield
from matserve.generator.candidates import candidate_prompts, generated_cif, judged, parse_structure
from matserve.generator.relaxed import (RELAX_MAX_STEPS, ranking, relax_options, relaxable, relaxed_fields,
                                        representatives)
from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.model import GPT
from matserve.generator.sampler import SamplingParams, SamplingRequest, generate_many
from matserve.generator.service import EMBEDDED_SMALL, LIMITS
from matserve.generator.tokenizer import Tokenizer
from matserve.relax import relax
from matserve.settings import Settings
from matserve.structures import System
from training.shared_data import MP_SPLITS, MP_STRUCTURES

ANCHORS = (  # MP-20 match rates at 1 and 20 candidates, from the papers (composition and Z, no space group)
    ("CrystaLLM (trained on MP-20)", 55.85, 75.14),
    ("DiffCSP", 51.49, 77.93),
    ("CDVAE", 33.90, 66.95),
)
FORMULA_SUM = re.compile(r"^_chemical_formula_sum\s+'?([^'\n]+)'?\s*$", re.MULTILINE)


def cell_composition(cif: str) -> Composition:
    """The cell's content from a Materials Project CIF's `_chemical_formula_sum` line."""
    return Composition(FORMULA_SUM.search(cif)[1])


def held_out_cases(count: int, seed: int, max_atoms: int) -> list[dict]:
    """`count` validation structures of at most `max_atoms` whose reduced formula never occurs in
    the training split, in a seeded order: {"material_id", "comp", "z", "atoms", "structure"}."""
    splits = pd.read_csv(MP_SPLITS)
    frame = pd.read_csv(MP_STRUCTURES, usecols=["material_id", "cif"]).set_index("material_id")
    split_of = dict(zip(splits["material_id"], splits["split"]))
    training = {cell_composition(cif).reduced_formula for material_id, cif in frame["cif"].items()
                if split_of.get(material_id) == "train"}
    ids = [m for m in splits.loc[splits["split"] == "val", "material_id"] if m in frame.index]
    random.Random(seed).shuffle(ids)
    cases = []
    for material_id in ids:
        cif = frame.loc[material_id, "cif"]
        cell = cell_composition(cif)
        if cell.num_atoms > max_atoms or cell.reduced_formula in training:
            continue
        reduced, z = cell.get_reduced_composition_and_factor()
        comp = "".join(f"{element}{int(amount)}" for element, amount in reduced.items())
        try:
            candidate_prompts(comp, int(z), None, 1)
        except ValueError:  # an element outside the generator's vocabulary
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(cif, fmt="cif")
        cases.append({"material_id": material_id, "comp": comp, "z": int(z), "atoms": int(cell.num_atoms),
                      "structure": structure})
        if len(cases) == count:
            break
    return cases


@dataclass
class Outcome:
    """One composition's candidates: which match, in sampling and in ranked order, and the shares."""

    material_id: str
    comp: str
    z: int
    raw_matches: list[bool] = field(default_factory=list)  # candidate i (sampling order) matches
    ranked_matches: list[bool] = field(default_factory=list)  # the i-th ranked candidate's relaxed structure matches
    served_match: bool = False  # the first of the ranked first served-n candidates
    valid: int = 0
    relaxed_valid: int = 0
    right_composition: int = 0
    relaxed: int = 0
    seconds: float = 0.0  # this composition's share of its group's time: all of it, sampling, relaxation
    sampling_seconds: float = 0.0
    relax_seconds: float = 0.0
    relax_steps: list[int] = field(default_factory=list)  # each distinct structure's optimiser steps
    relax_converged: int = 0  # distinct structures relaxed to the tolerances within the step cap


def matcher() -> StructureMatcher:
    return StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10)


def fits(candidate: Structure | None, reference: Structure) -> bool:
    if candidate is None:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(matcher().fit(candidate, reference))
    except Exception:  # StructureMatcher fails on some degenerate cells: no match
        return False


def run_group(cases: list[dict], model: GPT, forcefield: ForceField, settings: Settings, candidates: int,
              served_n: int, seed: int, max_steps: int = RELAX_MAX_STEPS) -> list[Outcome]:
    """Sample, judge, relax and rank the candidates of several compositions in one batch each
    (``max_steps``: the relaxation's step cap, the route's unless asked otherwise)."""
    started = time.perf_counter()
    tokenizer = Tokenizer()
    requests, prompts = [], []
    for case in cases:
        pairs = candidate_prompts(case["comp"], case["z"], None, candidates)
        prompts.append([prompt for _, prompt in pairs])
        params = SamplingParams(max_new_tokens=LIMITS["small"].max_new_tokens, seed=seed + len(requests))
        requests.append(SamplingRequest([tokenizer.encode(p) for p in prompts[-1]], params))
    completions = [[(prompt + tokenizer.decode(g.tokens), g.finish_reason or "length") for prompt, g in zip(texts, row)]
                   for texts, row in zip(prompts, generate_many(model, requests))]
    sampled = time.perf_counter()
    options = replace(relax_options(settings.optimizer, settings.cell_filter, settings.opttol_pressure),
                      max_steps=max_steps)
    cutoff = entry(settings.forcefield).neighbour_cutoff
    targets = [[relaxable(generated_cif(text), case["comp"], cutoff) if max_steps else None for text, _ in texts]
               for case, texts in zip(cases, completions)]  # max_steps 0: raw candidates only
    # as the route: per composition, each distinct structure is relaxed once and its result shared
    jobs = []  # (composition, candidate indices, the first of them's system)
    for c, row in enumerate(targets):
        indices = [i for i, target in enumerate(row) if isinstance(target, System)]
        firsts = representatives([row[i] for i in indices])
        for position in sorted(set(firsts)):
            members = [indices[p] for p, first in enumerate(firsts) if first == position]
            jobs.append((c, members, row[indices[position]]))
    results = relax(forcefield, [system for _, _, system in jobs], [options] * len(jobs),
                    atom_budget=settings.batch_size)
    relaxed_at = time.perf_counter()
    fields: list[list[dict | None]] = [[None] * candidates for _ in cases]
    for (c, members, _), result in zip(jobs, results):
        relaxed_once = relaxed_fields(result.system, result.energy, result.converged)
        for i in members:
            fields[c][i] = relaxed_once
    outcomes = []
    for case, texts, row in zip(cases, completions, fields):
        reference = case["structure"]
        outcome = Outcome(case["material_id"], case["comp"], case["z"])
        generated = []
        for echoed_text in texts:
            candidate = judged({"comp": case["comp"], "z": case["z"]}, *echoed_text)
            outcome.valid += candidate["valid"]
            structure = parse_structure(candidate["generated"])
            generated.append(structure)
            right = structure is not None and structure.composition.reduced_formula == \
                Composition(case["comp"]).reduced_formula
            outcome.right_composition += right
        outcome.raw_matches = [fits(s, reference) for s in generated]
        relaxed = [None if f is None or f["relaxed"] is None else parse_structure(f["relaxed"]) for f in row]
        outcome.relaxed = sum(f is not None for f in row)
        outcome.relaxed_valid = sum(f is not None and f["validity"]["valid"] for f in row)
        relaxed_matches = [fits(s, reference) for s in relaxed]
        outcome.ranked_matches = [relaxed_matches[i] for i in ranking(row)]
        served = ranking(row[:served_n])
        outcome.served_match = relaxed_matches[served[0]] if served else False
        outcomes.append(outcome)
    for index, outcome in enumerate(outcomes):
        outcome.seconds = (time.perf_counter() - started) / len(cases)
        outcome.sampling_seconds = (sampled - started) / len(cases)
        outcome.relax_seconds = (relaxed_at - sampled) / len(cases)
        outcome.relax_steps = [r.n_steps for (c, _, _), r in zip(jobs, results) if c == index]
        outcome.relax_converged = sum(r.converged for (c, _, _), r in zip(jobs, results) if c == index)
    return outcomes


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def table(outcomes: list[Outcome], candidates: int, served_n: int, relaxed: bool = True) -> str:
    count = len(outcomes)

    def at(k: int, attribute: str) -> str:
        if k > candidates or (attribute != "raw_matches" and not relaxed):
            return "-"
        return percent(sum(any(getattr(o, attribute)[:k]) for o in outcomes), count)

    all_candidates = count * candidates
    rows = [
        "| answer | match@1 % | match@8 % | match@20 % |",
        "|---|---|---|---|",
        f"| raw candidates, sampling order (today's answer: n 1) | {at(1, 'raw_matches')} | {at(8, 'raw_matches')} "
        f"| {at(20, 'raw_matches')} |",
        f"| relaxed and ranked ({candidates} candidates) | {at(1, 'ranked_matches')} | {at(8, 'ranked_matches')} "
        f"| {at(20, 'ranked_matches')} |",
        f"| **served: n {served_n}, relax (the first returned)** | "
        f"**{percent(sum(o.served_match for o in outcomes), count) if relaxed else '-'}** | – | – |",
        *(f"| {name} (MP-20, published) | {one:.2f} | – | {twenty:.2f} |" for name, one, twenty in ANCHORS),
    ]
    shares = (f"\n{count} compositions, {candidates} candidates each: valid as generated "
              f"{percent(sum(o.valid for o in outcomes), all_candidates)} %, right composition "
              f"{percent(sum(o.right_composition for o in outcomes), all_candidates)} %, relaxed "
              f"{percent(sum(o.relaxed for o in outcomes), all_candidates)} %, valid after relaxation "
              f"{percent(sum(o.relaxed_valid for o in outcomes), all_candidates)} % (of all candidates); "
              f"{sum(o.seconds for o in outcomes) / max(count, 1):.1f} s per composition "
              f"({sum(o.sampling_seconds for o in outcomes) / max(count, 1):.1f} sampling, "
              f"{sum(o.relax_seconds for o in outcomes) / max(count, 1):.1f} relaxing); "
              f"{sum(len(o.relax_steps) for o in outcomes)} distinct structures relaxed, "
              f"{sum(o.relax_converged for o in outcomes)} converged within the step cap")
    return "\n".join(rows) + shares


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100, help="compositions (the full run: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=20, help="candidates sampled per composition")
    parser.add_argument("--served-n", type=int, default=16, help="the n of the served answer's row")
    parser.add_argument("--max-atoms", type=int, default=20)
    parser.add_argument("--group", type=int, default=2, help="compositions sampled and relaxed in one batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=RELAX_MAX_STEPS,
                        help=f"the relaxation's step cap (the route's: {RELAX_MAX_STEPS})")
    parser.add_argument("--no-relax", action="store_true",
                        help="raw candidates only (to compare generator checkpoints quickly)")
    parser.add_argument("--checkpoint", type=Path, default=EMBEDDED_SMALL, help="the generator (the embedded small)")
    parser.add_argument("--out", type=Path,
                        help="each composition's outcome (JSON lines), written as it is done; a rerun with the "
                             "same file goes on where it stopped")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    settings = Settings()
    cases = held_out_cases(args.count, args.seed, args.max_atoms)
    model = load_checkpoint(args.checkpoint)
    forcefield = load_forcefield(settings.forcefield)
    wanted = {case["material_id"] for case in cases}
    outcomes = [] if args.out is None or not args.out.exists() else \
        [Outcome(**row) for row in map(json.loads, args.out.read_text().splitlines()) if row["material_id"] in wanted]
    done = {outcome.material_id for outcome in outcomes}
    steps = 0 if args.no_relax else args.max_steps
    for first in range(0, len(cases), args.group):  # the same groups and seeds as a run never stopped
        chunk = cases[first:first + args.group]
        if all(case["material_id"] in done for case in chunk):
            continue
        group = run_group(chunk, model, forcefield, settings, args.candidates, args.served_n,
                          args.seed + first * 1000, steps)
        for outcome in group:
            if outcome.material_id in done:
                continue
            outcomes.append(outcome)
            print(f"{len(outcomes)}/{len(wanted)} {outcome.comp} z={outcome.z}: raw {sum(outcome.raw_matches)}, "
                  f"served {outcome.served_match}, {outcome.seconds:.0f} s", flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(outcome.__dict__) + "\n")
    print(table(outcomes, args.candidates, args.served_n, relaxed=not args.no_relax))


if __name__ == "__main__":
    main()
