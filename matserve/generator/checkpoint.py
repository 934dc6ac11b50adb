"""CrystaLLM's (nanoGPT's) checkpoint format: `ckpt.pt` = {"model": state_dict, "model_args": {...}, ...}.

A model trained under `torch.compile` saves its keys with an `_orig_mod.` prefix, and one
saved by a torch without scaled_dot_product_attention carries each layer's causal mask as
an `attn.bias` buffer; loading strips the first and drops the second.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from matserve.generator.model import GPT, GPTConfig

COMPILED_PREFIX = "_orig_mod."


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict under our parameter names."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix(COMPILED_PREFIX)
        if key.endswith(".attn.bias"):  # the old causal-mask buffer, not a parameter
            continue
        out[key] = value
    if "lm_head.weight" not in out and "transformer.wte.weight" in out:
        out["lm_head.weight"] = out["transformer.wte.weight"]  # tied: either name will do
    return out


def config_from_model_args(model_args: dict[str, Any]) -> GPTConfig:
    names = {f.name for f in fields(GPTConfig)}
    return GPTConfig(**{k: v for k, v in model_args.items() if k in names})


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> GPT:
    """The model of a CrystaLLM checkpoint, in eval mode on `device`."""
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    model = GPT(config_from_model_args(checkpoint["model_args"]))
    model.load_state_dict(clean_state_dict(checkpoint["model"]))
    return model.to(device).eval()


def save_checkpoint(path: str | Path, model: GPT, float16: bool = False, **extra: Any) -> None:
    """Write `model` as CrystaLLM would (on the CPU; its floating-point tensors as float16 when
    asked); `extra` adds entries such as iter_num or optimizer."""
    state = {k: (v.half() if float16 and v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    write_whole(path, {"model": state, "model_args": asdict(model.config), **extra})


def write_whole(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """`torch.save` to a temporary file, then rename it: a reader never sees half a checkpoint."""
    path = Path(path)
    temporary = path.with_suffix(".tmp")
    torch.save(checkpoint, temporary)
    temporary.replace(path)
