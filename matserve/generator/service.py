"""What the Triton ``generator`` model does: prompts in, completed CIF texts out, per named checkpoint.

Models are named as in the CrystaLLM API (``small``, ``medium``, ``large``); each maps to a
CrystaLLM-format ``ckpt.pt``. Token caps and time limits are the API's: 1,200 tokens and 60 s
for ``small``, 2,000 and 120 s for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.model import GPT
from matserve.generator.sampler import SamplingParams, generate
from matserve.generator.tokenizer import Tokenizer

MODEL_NAMES = ("small", "medium", "large")


@dataclass(frozen=True)
class ModelLimits:
    max_tokens: int
    time_limit_s: float


LIMITS = {"small": ModelLimits(1200, 60.0), "medium": ModelLimits(2000, 120.0), "large": ModelLimits(2000, 120.0)}


class UnknownGeneratorModel(ValueError):
    pass


def configured_checkpoints(small: str = "", medium: str = "", large: str = "") -> dict[str, Path]:
    """The model names that have a checkpoint file."""
    paths = {"small": small, "medium": medium, "large": large}
    return {name: Path(path) for name, path in paths.items() if path}


class GeneratorService:
    def __init__(self, checkpoints: dict[str, Path], device: str = "cpu"):
        self.tokenizer = Tokenizer()
        self.models: dict[str, GPT] = {name: load_checkpoint(path, device).eval() for name, path in checkpoints.items()}

    def complete(self, model: str, prompts: list[str], seed: int = 0, temperature: float = 0.8,
                 top_k: int | None = 10) -> list[tuple[str, str]]:
        """(prompt + generated text, finish reason) for each prompt, all sampled in one batch."""
        if model not in self.models:
            raise UnknownGeneratorModel(f"generator model {model!r} is not configured")
        gpt = self.models[model]
        limits = LIMITS[model]
        encoded = [self.tokenizer.encode(prompt) for prompt in prompts]
        budget = max(1, limits.max_tokens - max(len(e) for e in encoded))
        params = SamplingParams(max_new_tokens=budget, temperature=temperature, top_k=top_k, seed=seed,
                                time_limit_s=limits.time_limit_s)
        with torch.no_grad():
            generations = generate(gpt, encoded, params)
        return [(prompt + self.tokenizer.decode(g.tokens), g.finish_reason or "length")
                for prompt, g in zip(prompts, generations)]
