from dataclasses import asdict

import pytest
import torch

from matserve.generator.checkpoint import load_checkpoint, save_checkpoint
from matserve.generator.model import GPT, SMALL, GPTConfig


@pytest.fixture(scope="module")
def small_model() -> GPT:
    """CrystaLLM's published small shape (8 layers, 8 heads, 512 wide, context 1024), random weights."""
    torch.manual_seed(0)
    return GPT(SMALL).eval()


def test_parameter_names_and_count_are_nanogpts(small_model):
    state = small_model.state_dict()
    for name in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                 "transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
                 "transformer.h.0.attn.c_proj.weight", "transformer.h.0.ln_2.weight", "transformer.h.0.mlp.c_fc.weight",
                 "transformer.h.0.mlp.c_proj.weight", "transformer.h.7.mlp.c_proj.bias", "transformer.ln_f.weight",
                 "transformer.ln_f.bias", "lm_head.weight"]:
        assert name in state
    assert len(state) == 2 + 8 * 12 + 2 + 1
    assert state["transformer.wpe.weight"].shape == (1024, 512)
    assert state["lm_head.weight"].data_ptr() == state["transformer.wte.weight"].data_ptr()  # tied
    c = 512
    per_layer = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * c + c)
    assert small_model.num_params() == 371 * c + 1024 * c + 8 * per_layer + 2 * c == 25_934_336


def _crystallm_checkpoint(model: GPT, prefix: str) -> dict:
    """What CrystaLLM's train.py saves; a compiled model's keys carry the `_orig_mod.` prefix."""
    state = {prefix + k: v for k, v in model.state_dict().items()}
    for i in range(model.config.n_layer):  # the causal-mask buffer an old torch saved as well
        size = model.config.block_size
        state[f"{prefix}transformer.h.{i}.attn.bias"] = torch.ones(size, size).tril().view(1, 1, size, size)
    # A real AdamW state (step counters, moments, param groups with tuples and None) must not
    # trip torch.load(weights_only=True); zero gradients and no weight decay leave the weights as they are.
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p in model.parameters():
        p.grad = None
    # CrystaLLM saves `dict(C)` of its OmegaConf options: plain values.
    options = {"dataset": "tokens_v1_train_val", "dropout": 0.1, "compile": True, "dtype": "bfloat16"}
    return {"model": state, "model_args": asdict(model.config), "optimizer": optimizer.state_dict(),
            "iter_num": 1000, "best_val_loss": torch.tensor(0.5), "config": options}


@pytest.mark.parametrize("prefix", ["", "_orig_mod."])
def test_crystallm_checkpoint_loads_with_identical_logits(small_model, tmp_path, prefix):
    path = tmp_path / "ckpt.pt"
    torch.save(_crystallm_checkpoint(small_model, prefix), path)
    loaded = load_checkpoint(path)
    assert loaded.config == SMALL
    assert not loaded.training
    idx = torch.randint(0, 371, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(idx)[0], small_model(idx)[0])


def test_save_checkpoint_writes_crystallm_format(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64)).eval()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, iter_num=7)
    raw = torch.load(path, weights_only=True)
    assert raw["model_args"] == {"block_size": 64, "vocab_size": 371, "n_layer": 2, "n_head": 2, "n_embd": 32,
                                 "dropout": 0.0, "bias": True}
    assert raw["iter_num"] == 7
    idx = torch.arange(20).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path)(idx)[0], model(idx)[0])
