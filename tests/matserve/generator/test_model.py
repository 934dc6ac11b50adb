import math

import pytest
import torch

from matserve.generator.kv_cache import KVCache
from matserve.generator.model import GPT, GPTConfig

CONFIG = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


@torch.no_grad()
def test_cached_decoding_gives_the_full_forward_logits(model):
    idx = torch.randint(0, 371, (3, 20), generator=torch.Generator().manual_seed(0))
    full = model(idx)[0]
    cache = KVCache(CONFIG, 3, 20, torch.float32, "cpu")
    first = model(idx[:, :12], cache=cache)[0]  # prefill
    steps = [model(idx[:, t:t + 1], cache=cache)[0] for t in range(12, 20)]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, rtol=0, atol=1e-5)
    assert cache.length == 20


@torch.no_grad()
def test_left_padding_with_positions_and_mask_changes_nothing(model):
    short = torch.tensor([[5, 6, 7]])
    alone = model(short)[0]
    padded = torch.tensor([[0, 0, 5, 6, 7]])
    positions = torch.tensor([[0, 0, 0, 1, 2]])
    keys = torch.arange(5) >= 2
    mask = (torch.ones(5, 5, dtype=torch.bool).tril() & (keys | torch.eye(5, dtype=torch.bool))).view(1, 1, 5, 5)
    torch.testing.assert_close(model(padded, positions=positions, mask=mask)[0][:, 2:], alone, rtol=0, atol=1e-5)


def test_loss_at_init_is_near_uniform(model):
    idx = torch.randint(0, 371, (4, 32), generator=torch.Generator().manual_seed(0))
    _, loss = model(idx[:, :-1], targets=idx[:, 1:])
    assert loss.item() == pytest.approx(math.log(371), abs=0.05)


def test_context_limit_is_enforced(model):
    with pytest.raises(ValueError, match="block size is 64"):
        model(torch.zeros((1, 65), dtype=torch.long))
