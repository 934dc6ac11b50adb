"""What the Triton ``generator`` model does: prompts in, completed CIF texts out, per named checkpoint.

Models are named as in the CrystaLLM API (``small``, ``medium``, ``large``); each maps to a
CrystaLLM-format ``ckpt.pt``. Token caps and time limits are the API's: 1,200 new tokens and
60 s for ``small``, 2,000 and 120 s for the others. A text that outgrows the model's context
(1,024 tokens for CrystaLLM's small and the embedded model) goes on over a sliding window, as
CrystaLLM's does (see sampler.py).

``small`` defaults to the embedded checkpoint, ``weights/small.pt`` beside this file (trained
by ``training.generator.train``); a configured ``small`` checkpoint replaces it. ``medium`` and
``large`` exist only when configured.

The Triton model serves through ``start`` and ``submit``: one scheduler loop per model
(scheduler.py) keeps a running batch that the prompts of every request join between decoding
steps, and answers each prompt the step its CIF ends. ``complete_many`` (plain Python: tests,
evaluation) samples the prompts of several requests in one batch. Either way each request
keeps its own seed, so it gets the same text as it would alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from matserve.contract import InvalidInput, WeightsInfo, file_weights
from matserve.generator.checkpoint import load_checkpoint
from matserve.generator.model import GPT
from matserve.generator.sampler import (KV_CACHE_BYTES, Generation, SamplingParams, SamplingRequest, check,
                                        generate_many)
from matserve.generator.scheduler import GenerationJob, GenerationScheduler, never_cancelled, nothing
from matserve.generator.tokenizer import Tokenizer

MODEL_NAMES = ("small", "medium", "large")
EMBEDDED_SMALL = Path(__file__).resolve().parent / "weights" / "small.pt"


@dataclass(frozen=True)
class ModelLimits:
    max_new_tokens: int  # CrystaLLM's cap: tokens generated after the prompt
    time_limit_s: float


LIMITS = {"small": ModelLimits(1200, 60.0), "medium": ModelLimits(2000, 120.0), "large": ModelLimits(2000, 120.0)}


def weights_info(checkpoint: Path) -> WeightsInfo:
    """A named model's checkpoint provenance: the embedded one, or a configured file (None checksum if missing)."""
    origin = "embedded" if checkpoint == EMBEDDED_SMALL else "configured"
    return file_weights(checkpoint, f"{origin} {checkpoint.parent.name}/{checkpoint.name}")


class UnknownGeneratorModel(InvalidInput):
    def __init__(self, model: str):
        super().__init__(f"generator model {model!r} is not configured", field="model")


@dataclass(frozen=True)
class Completion:
    """One caller's request: complete these prompts with this model."""

    model: str
    prompts: Sequence[str]
    seed: int = 0
    temperature: float = 0.8
    top_k: int | None = 10


def configured_checkpoints(small: str = "", medium: str = "", large: str = "",
                           embedded_small: Path | None = EMBEDDED_SMALL) -> dict[str, Path]:
    """The model names that have a checkpoint file: the configured ones, and `small` from the
    embedded weights when none is configured for it (and the file is there)."""
    paths = {"small": small, "medium": medium, "large": large}
    checkpoints = {name: Path(path) for name, path in paths.items() if path}
    if "small" not in checkpoints and embedded_small is not None and embedded_small.is_file():
        checkpoints = {"small": embedded_small, **checkpoints}
    return checkpoints


OnText = Callable[[int, str, str, bool], None]  # (prompt's index, prompt + generated text, finish reason, last)


class GeneratorService:
    def __init__(self, checkpoints: dict[str, Path], device: str | torch.device = "cpu",
                 kv_cache_bytes: int = KV_CACHE_BYTES):
        self.tokenizer = Tokenizer()
        self.kv_cache_bytes = kv_cache_bytes
        self.models: dict[str, GPT] = {name: load_checkpoint(path, device).eval() for name, path in checkpoints.items()}
        self.schedulers: dict[str, GenerationScheduler] = {}

    def start(self) -> None:
        """One scheduler loop (one running batch) per model."""
        for name, model in self.models.items():
            self.schedulers[name] = GenerationScheduler(model, self.kv_cache_bytes, name=f"generator-{name}")
            self.schedulers[name].start()

    def stop(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.stop()

    def submit(self, request: Completion, on_text: OnText, on_error: Callable[[Exception], None],
               is_cancelled: Callable[[], bool] = never_cancelled, on_cancelled: Callable[[], None] = nothing) -> None:
        """Hand a request to its model's running batch (after `start`); `on_text` is called, from
        the scheduler's thread, for each prompt as it ends, `on_cancelled` once it left the batch
        because `is_cancelled` said so. Raises the InvalidInput that refuses the request (an
        unconfigured model, a prompt longer than the model's context)."""
        sampling = self._sampling_request(request)
        prompts = list(request.prompts)

        def on_result(index: int, generation: Generation, last: bool) -> None:
            text = prompts[index] + self.tokenizer.decode(generation.tokens)
            on_text(index, text, generation.finish_reason or "length", last)

        self.schedulers[request.model].submit(GenerationJob(sampling.prompts, sampling.params, on_result, on_error,
                                                            is_cancelled, on_cancelled))

    def complete(self, model: str, prompts: list[str], seed: int = 0, temperature: float = 0.8,
                 top_k: int | None = 10) -> list[tuple[str, str]]:
        """(prompt + generated text, finish reason) for each prompt, all sampled in one batch."""
        result = self.complete_many([Completion(model, prompts, seed, temperature, top_k)])[0]
        if isinstance(result, ValueError):
            raise result
        return result

    def complete_many(self, requests: Sequence[Completion]) -> list[list[tuple[str, str]] | ValueError]:
        """Each request's completions, or the ValueError that refuses it (an unconfigured model,
        a prompt longer than the model's context); the accepted requests of one model are
        sampled in one batch."""
        results: list[list[tuple[str, str]] | ValueError] = [[] for _ in requests]
        batches: dict[str, list[tuple[int, SamplingRequest]]] = {}
        for r, request in enumerate(requests):
            try:
                sampling = self._sampling_request(request)
            except InvalidInput as error:
                results[r] = error
                continue
            batches.setdefault(request.model, []).append((r, sampling))
        for model, members in batches.items():
            generations = generate_many(self.models[model], [sampling for _, sampling in members],
                                        kv_cache_bytes=self.kv_cache_bytes)
            for (r, _), generated in zip(members, generations):
                results[r] = [(prompt + self.tokenizer.decode(g.tokens), g.finish_reason or "length")
                              for prompt, g in zip(requests[r].prompts, generated)]
        return results

    def _sampling_request(self, request: Completion) -> SamplingRequest:
        if request.model not in self.models:
            raise UnknownGeneratorModel(request.model)
        limits = LIMITS[request.model]
        encoded = [self.tokenizer.encode(prompt) for prompt in request.prompts]
        if not encoded:
            raise InvalidInput("no prompts", field="PROMPTS")
        params = SamplingParams(max_new_tokens=limits.max_new_tokens, temperature=request.temperature,
                                top_k=request.top_k, seed=request.seed, time_limit_s=limits.time_limit_s)
        try:
            check(self.models[request.model], encoded, params)
        except ValueError as error:  # a prompt longer than the model's context
            raise InvalidInput(str(error), field="PROMPTS") from error
        return SamplingRequest(encoded, params)
