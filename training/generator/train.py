"""Train the embedded `small` generator: a small nanoGPT on the Materials Project train split.

    python -m training.generator.train [--time-limit-min 60] [--out matserve/generator/weights/small.pt]

Steps:
1. Corpus: structures of the train split of `mp_cgcnn_36k.csv.gz` (P1 CIFs) become
   CrystaLLM's CIF text (`cif_format.to_crystallm_cif`, symmetrized at symprec 0.1) and then
   token ids. That symmetrization takes 25-50 ms a structure on one shared core (about 25
   minutes for all 30,691), so by default a seeded subset of 12,000 is used, leaving most of
   the hour to training; `--train-limit 0` takes all, and `--workers` converts in parallel.
   The tokenized corpus is cached under `.matserve/generator/` (a prefix of the seeded order,
   saved as it grows; the name carries `CORPUS_FORMAT`), so reruns skip it.
2. Training: each example is one whole CIF starting at position 0, exactly as a prompt
   starts when sampling (CrystaLLM instead cuts random windows from the concatenated
   corpus; with little compute, aligned CIFs waste no steps on mid-CIF starts). Examples are
   grouped by length into batches of about `--batch-tokens` tokens, so padding is rare; the
   loss ignores padding. AdamW, linear warm-up, then a cosine decay over whichever runs out
   first, the wall-time limit or `--max-epochs`. Seeded. `--bf16` runs the forward pass
   under bfloat16 autocast (weights and optimizer stay float32): on a CPU with AMX a step
   alone ran 2x faster, a whole run 1.25x; on one without bfloat16 units (an AVX2 AMD EPYC)
   it is emulated and at least 1.5x slower, so leave it off there. `--device cuda` trains
   on a GPU.
   `--init CKPT` starts from a checkpoint's weights (and shape) instead of random ones, so
   a model can be trained on in stages; the earlier stages' records are kept under "init".
   `--dropout` regularizes a model large enough to memorize the corpus (on a GPU, say).
   `--extra-corpus FILE` adds saved CIFs to the training ones, `--extra-repeat` times each:
   the model's own valid CIFs from `self_samples`, for rejection-sampling fine-tuning.
   `--writings K` augments the training split: each structure also written up to K - 1 other
   equally correct ways (`training.generator.augment`: other orbit representatives, another
   order of the site loop); the corpus is cached per K. `--max-tokens` caps the tokens seen,
   so that runs compared (with and without augmentation, say) get the same compute.
3. Output: a CrystaLLM-format checkpoint (`{"model", "model_args", ...}`) with the run's
   record under "training" (parameters, tokens seen, wall time, validation loss). The
   validation loss is measured every `--eval-every-min` and at the end, and the file always
   holds the weights of the lowest one so far: a run that starts to overfit keeps its best
   weights ("saved" and "step" in the record say which), and an interrupted one leaves them.

The wall-time limit covers everything, the corpus preparation included.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from matserve.generator.checkpoint import clean_state_dict, config_from_model_args, save_checkpoint, write_whole
from matserve.generator.model import GPT, GPTConfig
from matserve.generator.service import EMBEDDED_SMALL
from matserve.generator.tokenizer import Tokenizer
from training.shared_data import MP_SPLITS, MP_STRUCTURES

DEFAULT_OUT = EMBEDDED_SMALL
CACHE_DIR = Path(".matserve") / "generator"
# Part of the cache's name: raise it whenever cif_format or the tokenizer changes the ids a
# structure becomes, so no run trains on a corpus written the old way. 2: noble-gas stand-ins
# written as CrystaLLM writes them.
CORPUS_FORMAT = 2


@dataclass
class Corpus:
    """Tokenized CIFs: `tokens[offsets[i]:offsets[i + 1]]` is CIF i, of structure `ids[i]`."""

    ids: list[str]
    tokens: np.ndarray  # uint16
    offsets: np.ndarray  # int64, len(ids) + 1

    def __len__(self) -> int:
        return len(self.ids)

    def example(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_examples(cls, ids: list[str], examples: list[np.ndarray]) -> Corpus:
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in examples])]).astype(np.int64)
        tokens = np.concatenate(examples).astype(np.uint16) if examples else np.zeros(0, dtype=np.uint16)
        return cls(list(ids), tokens, offsets)

    def save(self, path: Path, **extra: int) -> None:
        """Write the corpus (and `extra` counters) as one npz, replacing any earlier file whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(temporary, ids=np.array(self.ids), tokens=self.tokens, offsets=self.offsets, **extra)
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> Corpus:
        saved = np.load(path)
        return cls(saved["ids"].tolist(), saved["tokens"], saved["offsets"])

    def __add__(self, other: Corpus) -> Corpus:
        return Corpus(self.ids + other.ids, np.concatenate([self.tokens, other.tokens]),
                      np.concatenate([self.offsets, self.offsets[-1] + other.offsets[1:]]))


def split_ids(splits_csv: Path, split: str) -> list[str]:
    """Material ids of one split (train, val, test), in file order."""
    splits = pd.read_csv(splits_csv)
    return splits.loc[splits["split"] == split, "material_id"].tolist()


def load_cifs(csv: Path, ids: list[str]) -> dict[str, str]:
    """The P1 CIF text of each of these material ids that the data set holds."""
    frame = pd.read_csv(csv, usecols=["material_id", "cif"])
    wanted = set(ids)
    return {m: c for m, c in zip(frame["material_id"], frame["cif"]) if m in wanted}


def cif_tokens(cif: str, tokenizer: Tokenizer, count: int = 1, seed: int = 0, shuffle: bool = True) -> list[list[int]]:
    """One MP CIF -> CrystaLLM CIF texts (the canonical one, and with `count` > 1 other equally
    correct writings: `training.generator.augment`) -> token ids. (pymatgen is imported here, so
    training from a cached corpus, on a GPU machine say, needs only torch, numpy and pandas.)"""
    from pymatgen.core import Structure

    from training.generator.augment import writings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_str(cif, fmt="cif")
        return [tokenizer.encode(text) for text in writings(structure, count, seed, shuffle)]


@functools.lru_cache(maxsize=1)
def process_tokenizer() -> Tokenizer:
    """One tokenizer per (worker) process."""
    return Tokenizer()


def convert(item: tuple[str, str | None], writings: int = 1,
            shuffle: bool = True) -> tuple[list[np.ndarray] | None, str | None]:
    """(the token ids of each writing, None), or (None, why) when the CIF is absent or pymatgen
    cannot symmetrize or write it. Module level so that worker processes can run it; each
    structure's writings are seeded by its id, so a corpus is the same however it is converted."""
    material_id, cif = item
    if cif is None:
        return None, None
    try:
        seed = int.from_bytes(material_id.encode()[-8:], "little")
        return [np.asarray(ids, dtype=np.uint16)
                for ids in cif_tokens(cif, process_tokenizer(), writings, seed, shuffle)], None
    except Exception as error:  # one bad structure must not stop the corpus
        return None, f"skip {material_id}: {type(error).__name__}: {error}"


def build_corpus(csv: Path, splits_csv: Path, split: str, limit: int | None, seed: int,
                 cache_dir: Path = CACHE_DIR, save_every: int = 1000, workers: int = 1, writings: int = 1,
                 shuffle_sites: bool = True) -> Corpus:
    """The tokenized corpus of a split, or of its first `limit` structures in a seeded shuffle,
    each structure written up to `writings` ways (the canonical CIF first).

    The cache holds a prefix of that shuffled order (saved every `save_every` structures), so
    an interrupted run, or one asking for more structures, goes on from where the last stopped.
    """
    ids = split_ids(splits_csv, split)
    random.Random(seed).shuffle(ids)
    wanted = ids if limit is None else ids[:limit]
    augmented = (f"_writings{writings}" + ("" if shuffle_sites else "_ordered")) if writings > 1 else ""
    path = cache_dir / f"{split}_seed{seed}_format{CORPUS_FORMAT}{augmented}.npz"
    kept: list[str] = []
    chunks: list[np.ndarray] = []
    done = 0  # structures of the shuffled order already tried
    if path.exists():
        cached = Corpus.load(path)
        kept, done = cached.ids, int(np.load(path)["done"])
        chunks = [cached.example(i) for i in range(len(cached))]
        print(f"corpus {split}: {len(kept)} CIFs of the first {done} structures from cache {path}", flush=True)

    def save() -> None:
        Corpus.from_examples(kept, chunks).save(path, done=done)

    if done < len(wanted):
        cifs = load_cifs(csv, wanted[done:])
        todo = [(material_id, cifs.get(material_id)) for material_id in wanted[done:]]
        start, failed = time.monotonic(), 0
        pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
        work = functools.partial(convert, writings=writings, shuffle=shuffle_sites)
        results = pool.imap(work, todo, chunksize=8) if pool else map(work, todo)  # in order
        for (material_id, _), (texts, problem) in zip(todo, results):
            done += 1
            if problem is not None:
                failed += 1
                print(f"  {problem}", flush=True)
            for tokens in texts or []:
                kept.append(material_id)
                chunks.append(tokens)
            if done % save_every == 0:
                save()
                print(f"  {split}: {done}/{len(wanted)} structures, {time.monotonic() - start:.0f} s", flush=True)
        if pool:
            pool.close()
        save()
        print(f"corpus {split}: converted up to {done} structures ({failed} failed) in "
              f"{time.monotonic() - start:.0f} s -> {path}", flush=True)

    position = {material_id: i for i, material_id in enumerate(wanted)}
    selected = [i for i, material_id in enumerate(kept) if material_id in position]
    corpus = Corpus.from_examples([kept[i] for i in selected], [chunks[i] for i in selected])
    print(f"corpus {split}: {len(corpus)} CIFs ({len(wanted) - len(corpus)} missing or failed), "
          f"{len(corpus.tokens):,} tokens", flush=True)
    return corpus


def length_batches(lengths: np.ndarray, max_length: int, batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices of the examples of at most `max_length` tokens, grouped into batches of similar
    length of about `batch_tokens` tokens each (padded size), in a random order."""
    fits = [i for i in range(len(lengths)) if lengths[i] <= max_length]
    order = sorted(fits, key=lambda i: (int(lengths[i]), rng.random()))  # ties broken randomly
    batches, current = [], []
    for i in order:
        if current and (len(current) + 1) * int(lengths[i]) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def make_batch(corpus: Corpus, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets (-1 on padding), right-padded to the longest example."""
    examples = [corpus.example(i) for i in indices]
    width = max(len(e) for e in examples) - 1
    x = torch.zeros((len(examples), width), dtype=torch.long)
    y = torch.full((len(examples), width), -1, dtype=torch.long)
    for row, e in enumerate(examples):
        t = torch.from_numpy(e.astype(np.int64))
        x[row, :len(e) - 1] = t[:-1]
        y[row, :len(e) - 1] = t[1:]
    return x, y


def train_step(model: GPT, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               grad_clip: float, bf16: bool) -> float:
    """One optimizer step on a batch; returns its loss. Under `bf16` only the forward pass is
    autocast: the float32 weights, gradients and optimizer state are unchanged."""
    device_type = x.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate_loss(model: GPT, corpus: Corpus, batch_tokens: int) -> float:
    """Mean cross-entropy per predicted token over the corpus's CIFs that fit the context,
    in float32 so runs with and without `--bf16` compare."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    max_length = model.config.block_size + 1  # inputs are the CIF minus its last token
    for indices in length_batches(corpus.lengths(), max_length, batch_tokens, random.Random(0)):
        x, y = (t.to(device) for t in make_batch(corpus, indices))
        logits, _ = model(x)
        total += float(torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1),
                                                         ignore_index=-1, reduction="sum"))
        count += int((y >= 0).sum())
    model.train()
    return total / count


def learning_rate(progress: float, step: int, args: argparse.Namespace) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from lr to min_lr as progress goes 0 -> 1."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    return args.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (args.lr - args.min_lr)


def initial_model(args: argparse.Namespace) -> tuple[GPT, dict | None]:
    """A fresh model of the requested shape, or the `--init` checkpoint's model and the record
    of how that checkpoint was made (its own "init" chain included)."""
    if args.init is None:
        config = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block_size,
                           vocab_size=Tokenizer().vocab_size, dropout=args.dropout, bias=True)
        return GPT(config), None
    checkpoint = torch.load(args.init, map_location="cpu", weights_only=True)
    model = GPT(config_from_model_args({**checkpoint["model_args"], "dropout": args.dropout}))
    model.load_state_dict({k: v.float() for k, v in clean_state_dict(checkpoint["model"]).items()})
    return model, {"path": str(args.init), "training": checkpoint.get("training")}


def plain(value: object) -> object:
    """An argument as the checkpoint can store it (`torch.load(weights_only=True)` reads no Path)."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=MP_STRUCTURES)
    parser.add_argument("--splits", type=Path, default=MP_SPLITS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--train-limit", type=int, default=12000,
                        help="structures from a seeded shuffle of the train split (0: all 30,691)")
    parser.add_argument("--val-limit", type=int, default=400, help="validation CIFs for the loss")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=1024, help="context; longer CIFs are left out")
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--min-lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout while training (sampling uses none)")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--max-epochs", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=float, default=0,
                        help="stop after this many training tokens (0: no cap); equal compute for runs compared")
    parser.add_argument("--writings", type=int, default=1,
                        help="augmentation: each training structure written up to this many equally correct ways "
                             "(other orbit representatives, another site order; training.generator.augment)")
    parser.add_argument("--keep-site-order", action="store_true",
                        help="with --writings: move the positions only, keep the canonical order of the site rows")
    parser.add_argument("--time-limit-min", type=float, default=60.0, help="wall time for everything")
    parser.add_argument("--reserve-min", type=float, default=1.5, help="kept for the final loss and save")
    parser.add_argument("--eval-every-min", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--bf16", action="store_true", help="forward pass under bfloat16 autocast")
    parser.add_argument("--workers", type=int, default=1, help="processes converting the corpus")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this checkpoint's weights; its shape replaces --n-layer/--n-head/--n-embd")
    parser.add_argument("--extra-corpus", type=Path, action="append", default=[],
                        help="a saved Corpus (self_samples' output, say) added to the training CIFs; repeatable")
    parser.add_argument("--extra-repeat", type=int, default=1, help="times each extra CIF is in an epoch")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--fp16", action="store_true", help="store the weights as float16")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + 60 * (args.time_limit_min - args.reserve_min)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    train = build_corpus(args.csv, args.splits, "train", args.train_limit or None, args.seed, args.cache_dir,
                         workers=args.workers, writings=args.writings, shuffle_sites=not args.keep_site_order)
    for path in args.extra_corpus:
        extra = Corpus.load(path)
        print(f"extra corpus {path}: {len(extra)} CIFs x {args.extra_repeat}", flush=True)
        for _ in range(args.extra_repeat):
            train = train + extra
    val = build_corpus(args.csv, args.splits, "val", args.val_limit, args.seed, args.cache_dir, workers=args.workers)
    model, init_record = initial_model(args)
    model.to(args.device)
    config = model.config
    lengths = train.lengths()
    max_length = config.block_size + 1  # inputs are the CIF minus its last token
    usable = lengths <= max_length
    print(f"train: {int(usable.sum())} CIFs of <= {max_length} tokens ({int((~usable).sum())} longer left out), "
          f"{int(lengths[usable].sum())} tokens; prep took {time.monotonic() - started:.0f} s", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    print(f"model: {config}, {model.num_params():,} parameters", flush=True)

    rng = random.Random(args.seed)
    epoch_tokens = int(lengths[usable].sum())
    train_start = time.monotonic()
    train_seconds = max(1.0, deadline - train_start)
    step, tokens_seen, epoch, losses = 0, 0, 0, []
    next_eval = train_start + 60 * args.eval_every_min
    history: list[dict] = []
    best: dict = {"val_loss": math.inf}  # the weights on disk at `args.out`

    def record() -> dict:
        """How the run went so far, for the checkpoint's "training" entry."""
        return {
            "parameters": model.num_params(),
            "model_args": asdict(config),
            "train_cifs": int(usable.sum()),
            "val_cifs": len(val),
            "steps": step,
            "tokens_seen": tokens_seen,
            "epochs": tokens_seen / epoch_tokens,
            "train_loss_last_50": float(np.mean(losses[-50:])) if losses else None,
            "val_history": list(history),
            "training_wall_s": round(time.monotonic() - train_start, 1),
            "total_wall_s": round(time.monotonic() - started, 1),
            "threads": args.threads,
            "seed": args.seed,
            "args": {k: plain(v) for k, v in vars(args).items()},
            "init": init_record,
        }

    done = False
    while not done:
        batches = length_batches(lengths, max_length, args.batch_tokens, rng)
        for indices in batches:
            now = time.monotonic()
            progress = max((now - train_start) / train_seconds, tokens_seen / (args.max_epochs * epoch_tokens),
                           tokens_seen / args.max_tokens if args.max_tokens else 0.0)
            if progress >= 1.0:
                done = True
                break
            lr = learning_rate(progress, step, args)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = (t.to(args.device) for t in make_batch(train, indices))
            losses.append(train_step(model, optimizer, x, y, args.grad_clip, args.bf16))
            step += 1
            tokens_seen += int((y >= 0).sum())
            if step % 50 == 0:
                elapsed = time.monotonic() - train_start
                print(f"step {step} epoch {epoch} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} "
                      f"tokens {tokens_seen:,} ({tokens_seen / elapsed:.0f}/s) {elapsed / 60:.1f} min", flush=True)
            if now >= next_eval:
                val_loss = evaluate_loss(model, val, args.batch_tokens)
                history.append({"step": step, "tokens": tokens_seen, "val_loss": val_loss})
                print(f"step {step}: val loss {val_loss:.4f}", flush=True)
                if val_loss < best["val_loss"]:
                    best = {"val_loss": val_loss, "step": step, "tokens": tokens_seen}
                    save_checkpoint(args.out, model, args.fp16, iter_num=step,
                                    training={**record(), **best, "saved": "best so far, training on"})
                next_eval = time.monotonic() + 60 * args.eval_every_min
        else:
            epoch += 1

    val_loss = evaluate_loss(model, val, args.batch_tokens)
    history.append({"step": step, "tokens": tokens_seen, "val_loss": val_loss})
    if val_loss < best["val_loss"] or "step" not in best:  # better, or nothing saved yet (a NaN loss, say)
        best = {"val_loss": val_loss, "step": step, "tokens": tokens_seen}
        final = {**record(), **best, "saved": "at the end"}
        save_checkpoint(args.out, model, args.fp16, iter_num=step, training=final)
    else:  # the weights on disk are the best seen; their record learns how the run ended
        final = {**record(), **best, "saved": f"at step {best['step']}, the lowest validation loss"}
        saved = torch.load(args.out, map_location="cpu", weights_only=True)
        write_whole(args.out, {**saved, "training": final})
    print(json.dumps(final, indent=1), flush=True)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)
    return final


if __name__ == "__main__":
    main()
