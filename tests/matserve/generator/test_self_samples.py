"""The rejection-sampling corpus: exactly the valid ones of the embedded model's own CIFs."""

from __future__ import annotations

import numpy as np
import pytest

from matserve.generator.checkpoint import load_checkpoint
from training.generator.evaluate import sample, split_prompts
from training.generator.self_samples import main
from matserve.generator.service import EMBEDDED_SMALL
from matserve.generator.tokenizer import Tokenizer
from training.generator.train import split_ids
from matserve.generator.validity import judge
from training.shared_data import MP_SPLITS, MP_STRUCTURES


@pytest.mark.parametrize("z_from", ["cell", "symmetrized"])  # three of these six compositions differ in Z
def test_it_keeps_the_valid_generations_for_training_compositions_only(tmp_path, z_from):
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    out = tmp_path / "self.npz"
    corpus = main(["--count", "6", "--batch", "6", "--seed", "3", "--z-from", z_from, "--out", str(out)])

    # The same prompts and seeds, sampled and judged as `evaluate` does.
    cases = split_prompts(6, 3, split="train", z_from=z_from)
    sample(cases, load_checkpoint(EMBEDDED_SMALL), batch_size=6, seed=3)
    valid = [case for case in cases if judge(case["generated"], case["finish"]).valid]
    assert 0 < len(valid) < 6  # this seed gives both kinds, so the filter is exercised
    assert corpus.ids == [case["material_id"] for case in valid]
    assert set(corpus.ids) <= set(split_ids(MP_SPLITS, "train"))
    tokenizer = Tokenizer()
    for i, case in enumerate(valid):
        assert corpus.example(i).tolist() == tokenizer.encode(case["generated"])
        assert case["generated"].endswith("\n\n")
    assert int(np.load(out)["tried"]) == 6
