"""The training script's corpus (serial and parallel conversion agree) and its warm start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matserve.generator.checkpoint import save_checkpoint
from matserve.generator.model import GPT, GPTConfig
from matserve.generator.tokenizer import Tokenizer
from matserve.generator.train import build_corpus, convert, initial_model, parse_args, train_step
from matserve.shared_data import MP_SPLITS, MP_STRUCTURES


def test_convert_gives_tokens_or_the_reason_it_could_not(mp_structures):
    tokens, problem = convert(("mp-x", mp_structures["Si"].to(fmt="cif")))
    assert problem is None and tokens.dtype == np.uint16
    assert Tokenizer().decode(tokens.tolist()).startswith("data_Si")  # a conventional Si cell
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
