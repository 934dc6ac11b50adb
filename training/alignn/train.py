"""Train the embedded ALIGNN formation-energy model on mp_cgcnn_36k (its MEGNet train split).

    python -m training.alignn.train --minutes 55
    python -m training.alignn.train --minutes 35 --lr 1e-3 --seed 1 --init stage1/   (a second stage)
    python -m training.alignn.train --shape published --device cuda ...   (4 + 4 layers, width 256)

Seeded; the wall-time budget sets the schedule (warm-up, then cosine decay over the budget), so
a run stops on time whatever the machine. The model with the lowest validation MAE is kept and
written in the JARVIS layout (``config.json`` + ``checkpoint_final.pt``), which
``matserve.alignn.checkpoint`` loads like any published ALIGNN checkpoint. Training labels below
``OUTLIER_BELOW`` eV/atom (a few broken entries of the old MP build, e.g. −13.6) are dropped;
validation and test keep every entry.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from matserve.alignn.checkpoint import EMBEDDED_DIR, load_checkpoint, save_checkpoint
from training.alignn.dataset import Example, collate, load_split
from matserve.alignn.model import ALIGNN, ALIGNNConfig

OUTLIER_BELOW = -5.0  # eV/atom
EMBEDDED_CONFIG = ALIGNNConfig(alignn_layers=2, gcn_layers=2, hidden_features=64, embedding_features=32)
PUBLISHED_CONFIG = ALIGNNConfig()  # ALIGNN's own defaults: 4 ALIGNN + 4 GCN layers, width 256
SHAPES = {"embedded": EMBEDDED_CONFIG, "published": PUBLISHED_CONFIG}


def batches(examples: list[Example], size: int, rng: random.Random | None = None):
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        yield [examples[i] for i in order[start:start + size]]


@torch.no_grad()
def mean_absolute_error(model: ALIGNN, examples: list[Example], batch_size: int = 64) -> float:
    model.eval()
    device = next(model.parameters()).device
    errors = []
    for chunk in batches(examples, batch_size):
        batch, targets = collate(chunk)
        errors.append((model(batch.to(device)) - targets.to(device)).abs().cpu())
    return float(torch.cat(errors).mean())


def learning_rate(progress: float, peak: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return peak * progress / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    limit = args.train_limit or None
    train_set = [e for e in load_split("train", limit=limit, seed=args.seed) if e.target >= OUTLIER_BELOW]
    val_set = load_split("val", limit=args.val_limit, seed=args.seed)
    return train_model(train_set, val_set, args)


def train_model(train_set: list[Example], val_set: list[Example], args: argparse.Namespace) -> dict:
    """Train for ``args.minutes`` (or ``args.max_steps``) on ``args.device``; the best-validation model."""
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    if args.init:
        model = load_checkpoint(args.init).train()
    else:
        model = ALIGNN(SHAPES[args.shape])
        model.fc.bias.data.fill_(float(np.mean([e.target for e in train_set])))
    model = model.to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-5)
    budget = args.minutes * 60
    started = time.time()
    best_mae, best_state, epoch, steps, last_eval = math.inf, None, 0, 0, started
    while time.time() - started < budget and steps < args.max_steps:
        epoch += 1
        epoch_started, seen = time.time(), 0
        for chunk in batches(train_set, args.batch_size, rng):
            progress = (time.time() - started) / budget
            if progress >= 1 or steps >= args.max_steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(progress, args.lr)
            model.train()
            batch, targets = collate(chunk)
            loss = torch.nn.functional.l1_loss(model(batch.to(args.device)), targets.to(args.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            seen += len(chunk)
            if time.time() - last_eval > args.eval_every_min * 60:
                best_mae, best_state = keep_best(model, val_set, best_mae, best_state, epoch, steps, started)
                last_eval = time.time()
        print(f"epoch {epoch}: {seen} crystals, {(time.time() - epoch_started) / max(seen, 1) * 1000:.1f} s "
              f"per 1000 crystals", flush=True)
    best_mae, best_state = keep_best(model, val_set, best_mae, best_state, epoch, steps, started)
    model.load_state_dict(best_state)
    return {"epochs": round(steps * args.batch_size / len(train_set), 2), "steps": steps,
            "train_examples": len(train_set), "val_examples": len(val_set), "val_mae": best_mae,
            "wall_minutes": round((time.time() - started) / 60, 1), "threads": torch.get_num_threads(),
            "device": str(args.device), "parameters": sum(p.numel() for p in model.parameters()),
            "seed": args.seed, "model": model.cpu()}


def keep_best(model, val_set, best_mae, best_state, epoch, steps, started):
    mae = mean_absolute_error(model, val_set)
    print(f"epoch {epoch} step {steps} {(time.time() - started) / 60:.1f} min: val MAE {mae:.4f} eV/atom", flush=True)
    if mae < best_mae:
        return mae, {k: v.clone() for k, v in model.state_dict().items()}
    return best_mae, best_state


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the device runner shares with this script."""
    parser.add_argument("--shape", choices=sorted(SHAPES), default="embedded", help="network shape (without --init)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-steps", type=int, default=10**9, help="stop after this many steps (tests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-limit", type=int, default=0, help="a seeded subset of the train split; 0: all")
    parser.add_argument("--val-limit", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=55)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every-min", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=EMBEDDED_DIR)
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights (a further stage)")
    add_model_arguments(parser)
    args = parser.parse_args()
    earlier = json.loads((args.init / "config.json").read_text()).get("matserve_training") if args.init else None
    record = train(args)
    model = record.pop("model")
    record["config"] = asdict(model.config)
    record["command"] = (f"python -m training.alignn.train --train-limit {args.train_limit} --minutes {args.minutes} "
                         f"--lr {args.lr} --seed {args.seed} --threads {args.threads} --batch-size {args.batch_size}"
                         + (f" --init {args.init}" if args.init else f" --shape {args.shape}"))
    if earlier:
        record["after"] = earlier
    save_checkpoint(model, args.out, training=record)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
