"""The device runner's dry run: its ALIGNN job on a tiny corpus, on the CPU, as the GPU machine would run it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.device.corpus import build_corpus, examples
from matserve.alignn.checkpoint import load_checkpoint
from training.alignn.dataset import build_examples, labelled_split
from training.shared_data import MP_STRUCTURES

PER_SPLIT = 4


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    path = tmp_path_factory.mktemp("device") / "corpus.pt"
    torch.save(build_corpus(PER_SPLIT, seed=5), path)
    return path


def test_corpus_graphs_are_the_training_graphs(corpus_file):
    corpus = torch.load(corpus_file, weights_only=True)
    from_tensors = examples(corpus, "test", workers=2)
    rows = labelled_split().set_index("material_id").loc[[e.material_id for e in from_tensors]].reset_index()
    from_cifs = build_examples(rows)
    assert [e.material_id for e in from_cifs] == [e.material_id for e in from_tensors]
    for ours, reference in zip(from_tensors, from_cifs):
        assert ours.edge_src.tolist() == reference.edge_src.tolist()
        assert ours.edge_dst.tolist() == reference.edge_dst.tolist()
        np.testing.assert_allclose(ours.bond_vectors, reference.bond_vectors, rtol=0, atol=1e-6)
        assert ours.target == pytest.approx(reference.target, abs=1e-12)


# The GPU machine has neither: the job must not import them.
WITHOUT_PYMATGEN = ("import sys, runpy; sys.modules.update(pymatgen=None, ase=None); "
                    "runpy.run_module('bench.device.alignn_train', run_name='__main__')")


def test_alignn_job_dry_run(corpus_file, tmp_path):
    out = tmp_path / "alignn"
    command = [sys.executable, "-c", WITHOUT_PYMATGEN, "--corpus", str(corpus_file), "--out", str(out),
               "--device", "cpu", "--max-steps", "3", "--batch-size", "2", "--workers", "2", "--shape", "embedded"]
    subprocess.run(command, check=True, timeout=120)
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 3 and result["crystals"] == {"train": PER_SPLIT, "val": PER_SPLIT, "test": PER_SPLIT}
    assert np.isfinite(result["test_mae"]) and np.isfinite(result["val_mae"])
    model = load_checkpoint(out)
    assert sum(p.numel() for p in model.parameters()) == result["parameters"]
