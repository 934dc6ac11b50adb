"""The training script's corpus (serial and parallel conversion agree), its warm start, and a
whole run that keeps its best weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from matserve.generator.checkpoint import load_checkpoint, save_checkpoint
from matserve.generator.model import GPT, GPTConfig
from matserve.generator.tokenizer import Tokenizer
from training.generator.train import CORPUS_FORMAT, Corpus, build_corpus, convert, evaluate_loss, initial_model, \
    parse_args, train_step
from training.shared_data import MP_SPLITS, MP_STRUCTURES


def test_convert_gives_tokens_or_the_reason_it_could_not(mp_structures):
    (tokens,), problem = convert(("mp-x", mp_structures["Si"].to(fmt="cif")))
    assert problem is None and tokens.dtype == np.uint16
    assert Tokenizer().decode(tokens.tolist()).startswith("data_Si")  # a conventional Si cell
    texts, _ = convert(("mp-x", mp_structures["CaFeO3"].to(fmt="cif")), writings=3)
    again, _ = convert(("mp-x", mp_structures["CaFeO3"].to(fmt="cif")), writings=3)
    assert len(texts) == 3 and texts[0].tolist() != texts[1].tolist()  # the canonical one, then others
    assert [t.tolist() for t in texts] == [t.tolist() for t in again]  # seeded by the material id
    assert convert(("mp-gone", None)) == (None, None)
    tokens, problem = convert(("mp-bad", "not a CIF"))
    assert tokens is None and problem.startswith("skip mp-bad: ")


def test_parallel_conversion_gives_the_serial_corpus(tmp_path):
    if not MP_STRUCTURES.exists():
        pytest.skip(f"{MP_STRUCTURES} is not here")
    serial = build_corpus(MP_STRUCTURES, MP_SPLITS, "val", 6, seed=3, cache_dir=tmp_path / "serial", workers=1)
    parallel = build_corpus(MP_STRUCTURES, MP_SPLITS, "val", 6, seed=3, cache_dir=tmp_path / "parallel", workers=2)
    assert len(serial) == 6 and serial.ids == parallel.ids
    assert np.array_equal(serial.tokens, parallel.tokens) and np.array_equal(serial.offsets, parallel.offsets)
    # A prefix of the cached corpus.
    cached = build_corpus(MP_STRUCTURES, MP_SPLITS, "val", 4, seed=3, cache_dir=tmp_path / "serial")
    assert cached.ids == serial.ids[:4] and np.array_equal(cached.tokens, serial.tokens[:cached.offsets[-1]])


def test_a_corpus_saves_loads_and_adds_up(tmp_path):
    first = Corpus.from_examples(["a", "b"], [np.array([1, 2, 3]), np.array([4])])
    second = Corpus.from_examples(["c"], [np.array([5, 6])])
    first.save(tmp_path / "first.npz", done=7)
    loaded = Corpus.load(tmp_path / "first.npz")
    assert loaded.ids == ["a", "b"] and loaded.tokens.dtype == np.uint16
    assert int(np.load(tmp_path / "first.npz")["done"]) == 7
    both = loaded + second
    assert both.ids == ["a", "b", "c"] and both.lengths().tolist() == [3, 1, 2]
    assert [both.example(i).tolist() for i in range(3)] == [[1, 2, 3], [4], [5, 6]]
    assert not (tmp_path / "first.tmp.npz").exists()  # written whole, then renamed


def test_init_starts_from_the_checkpoints_weights_and_shape(tmp_path):
    torch.manual_seed(0)
    earlier = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64, vocab_size=371))
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, earlier, training={"val_loss": 0.5})

    model, record = initial_model(parse_args(["--init", str(path), "--n-layer", "4"]))
    assert model.config == earlier.config  # the checkpoint's shape, not the flags'
    for name, value in earlier.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert record == {"path": str(path), "training": {"val_loss": 0.5}}

    fresh, record = initial_model(parse_args(["--n-layer", "1", "--n-head", "2", "--n-embd", "32"]))
    assert (fresh.config.n_layer, fresh.config.n_embd, record) == (1, 32, None)


@pytest.mark.parametrize("bf16", [False, True])
def test_train_step_learns_and_keeps_float32_weights(bf16):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=371))
    reference = GPT(model.config)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.randint(0, 371, (4, 48), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)
    y[:, -5:] = -1  # padding is ignored

    with torch.no_grad():
        float32_loss = float(reference(x, y)[1])
    losses = [train_step(model, optimizer, x, y, grad_clip=1.0, bf16=bf16) for _ in range(30)]
    # The first step's loss is the float32 loss of the same weights, to bfloat16's precision.
    assert losses[0] == pytest.approx(float32_loss, rel=0 if not bf16 else 1e-2)
    assert (losses[0] != float32_loss) == bf16  # autocast did run, and only when asked
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in optimizer.state.values())


def write_cached_corpus(cache_dir: Path, splits_csv: Path, corpora: dict[str, list[np.ndarray]]) -> None:
    """Token sequences as `build_corpus` caches them, and the splits file that names them."""
    rows = []
    for split, sequences in corpora.items():
        ids = [f"mp-{split}-{i}" for i in range(len(sequences))]
        rows += [{"material_id": material_id, "split": split} for material_id in ids]
        Corpus.from_examples(ids, sequences).save(cache_dir / f"{split}_seed1337_format{CORPUS_FORMAT}.npz",
                                                  done=len(ids))
    pd.DataFrame(rows).to_csv(splits_csv, index=False)


def test_a_run_from_a_cached_corpus_needs_no_pymatgen_and_keeps_its_best_weights(tmp_path):
    # Training texts alternate two tokens, validation texts repeat one of them: learning which
    # tokens occur helps the validation loss, learning that they alternate then hurts it, so
    # the best weights are an early step's, not the last.
    corpora = {"train": [np.array([1, 2] * 15) for _ in range(64)], "val": [np.ones(30) for _ in range(8)]}
    write_cached_corpus(tmp_path, tmp_path / "splits.csv", corpora)
    Corpus.from_examples(["mp-self-0", "mp-self-1"], [np.array([2, 1] * 15)] * 2).save(tmp_path / "self.npz")
    out = tmp_path / "ckpt.pt"
    cache = ["--cache-dir", str(tmp_path), "--splits", str(tmp_path / "splits.csv"), "--csv", str(tmp_path / "x.csv"),
             "--extra-corpus", str(tmp_path / "self.npz"), "--extra-repeat", "3"]
    flags = [*cache, "--train-limit", "0", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "64",
             "--batch-tokens", "256", "--lr", "1e-2", "--warmup-steps", "1", "--max-epochs", "3",
             "--eval-every-min", "0", "--dropout", "0.1", "--out", str(out)]
    no_pymatgen = ("import sys; sys.modules['pymatgen'] = None; "
                   "from training.generator.train import main; main(sys.argv[1:])")
    subprocess.run([sys.executable, "-c", no_pymatgen, *flags], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parents[3])

    checkpoint = torch.load(out, weights_only=True)
    record = checkpoint["training"]
    history = [h["val_loss"] for h in record["val_history"]]
    assert len(history) == record["steps"] + 1  # every step, and once more at the end
    assert record["val_loss"] == min(history) < history[-1]
    assert record["step"] == checkpoint["iter_num"] < record["steps"]
    assert record["saved"] == f"at step {record['step']}, the lowest validation loss"
    assert checkpoint["model_args"]["dropout"] == 0.1
    assert record["train_cifs"] == 64 + 2 * 3 and record["args"]["extra_corpus"] == [str(tmp_path / "self.npz")]
    val = build_corpus(tmp_path / "x.csv", tmp_path / "splits.csv", "val", None, 1337, tmp_path)
    assert evaluate_loss(load_checkpoint(out), val, 256) == pytest.approx(record["val_loss"], rel=1e-6)
