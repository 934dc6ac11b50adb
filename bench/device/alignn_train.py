"""Device job: train ALIGNN on mp_cgcnn_36k from the carried tensor corpus, keep the best-validation weights.

    python -m bench.device.alignn_train --corpus .matserve/device/mp_corpus.pt --device cuda \
        --shape published --minutes 8 --out $OUT/alignn

Runs on the bare GPU machine (its own Python and torch, no pymatgen, no network): graphs are built
there from positions and cells with ``matserve.alignn.neighbours`` (a CPU pool; on a GPU a sample
is also built on the GPU and checked edge for edge against the CPU's), the training loop is
``training.alignn.train``'s, and the result is a JARVIS-layout checkpoint folder plus
``result.json`` (validation and test MAE, timings). ``--device cpu --max-steps 3`` on a tiny
corpus is the dry run (``make device-dry-run``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.device.corpus import DEFAULT_PATH, crystals, example, examples
from matserve.alignn.checkpoint import save_checkpoint
from training.alignn.dataset import Example
from training.alignn.train import OUTLIER_BELOW, add_model_arguments, mean_absolute_error, train_model

GPU_CHECK_CRYSTALS = 200


def same_edges(a: Example, b: Example) -> bool:
    return (np.array_equal(a.edge_src, b.edge_src) and np.array_equal(a.edge_dst, b.edge_dst)
            and bool(np.abs(a.bond_vectors - b.bond_vectors).max() <= 1e-6))


def check_gpu_graphs(corpus: dict, reference: list[Example], device: str) -> dict:
    """Build a sample of graphs on ``device`` and compare them with the CPU's."""
    chosen = crystals(corpus, "test")[:GPU_CHECK_CRYSTALS]
    started = time.time()
    built = [example(crystal, device) for crystal in chosen]
    seconds = time.time() - started
    by_id = {e.material_id: e for e in reference}
    matches = sum(same_edges(e, by_id[e.material_id]) for e in built)
    return {"crystals": len(built), "identical": matches, "edges": int(sum(len(e.edge_src) for e in built)),
            "seconds_on_device": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-limit", type=int, default=0, help="validation crystals; 0: the whole split")
    parser.add_argument("--eval-every-min", type=float, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="CPU processes building graphs")
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights")
    add_model_arguments(parser)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    record: dict = {"torch": torch.__version__, "device": args.device}

    started = time.time()  # graphs first: the pool forks before CUDA starts in this process
    corpus = torch.load(args.corpus, weights_only=True)
    splits = {split: examples(corpus, split, args.workers) for split in ("train", "val", "test")}
    record["graph_seconds"] = round(time.time() - started, 1)
    record["gpu"] = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    record["crystals"] = {split: len(chosen) for split, chosen in splits.items()}
    print(f"graphs built in {record['graph_seconds']} s: {record['crystals']}", flush=True)
    if args.device.startswith("cuda"):
        record["gpu_graph_check"] = check_gpu_graphs(corpus, splits["test"], args.device)
        print(f"GPU neighbour search: {record['gpu_graph_check']}", flush=True)

    train_set = [e for e in splits["train"] if e.target >= OUTLIER_BELOW]
    val_set = splits["val"][:args.val_limit] if args.val_limit else splits["val"]
    trained = train_model(train_set, val_set, args)
    model = trained.pop("model")
    record.update(trained)
    record["test_mae"] = mean_absolute_error(model.to(args.device), splits["test"])
    record["config"] = asdict(model.config)
    record["command"] = ("python -m bench.device.alignn_train " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k not in ("out", "corpus")))
    save_checkpoint(model.cpu(), args.out, training={k: v for k, v in record.items() if k != "gpu_graph_check"})
    (args.out / "result.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1), flush=True)


if __name__ == "__main__":
    main()
