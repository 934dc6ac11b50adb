import pytest
import torch

from matserve.generator.checkpoint import save_checkpoint
from matserve.generator.model import GPT, GPTConfig
from matserve.generator.prompt import build_prompt
from matserve.generator.service import GeneratorService, UnknownGeneratorModel, configured_checkpoints


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.pt"
    save_checkpoint(path, GPT(GPTConfig(block_size=256, n_layer=1, n_head=2, n_embd=32)))
    return path


def test_only_models_with_a_checkpoint_are_configured(tiny_checkpoint):
    assert configured_checkpoints(small=str(tiny_checkpoint)) == {"small": tiny_checkpoint}
    assert configured_checkpoints() == {}


def test_completions_start_with_their_prompts_and_are_seeded(tiny_checkpoint):
    service = GeneratorService({"small": tiny_checkpoint})
    prompts = [build_prompt("NaCl", 4), build_prompt("NaCl", 4, "Fm-3m")]
    first = service.complete("small", prompts, seed=3)
    again = service.complete("small", prompts, seed=3)
    assert first == again
    for prompt, (text, finish) in zip(prompts, first):
        assert text.startswith(prompt) and len(text) > len(prompt)
        assert finish in ("stop", "length")


def test_an_unconfigured_model_is_refused(tiny_checkpoint):
    with pytest.raises(UnknownGeneratorModel, match="'large' is not configured"):
        GeneratorService({"small": tiny_checkpoint}).complete("large", ["data_Na1Cl1\n"])
