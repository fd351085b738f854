"""Train a model on a folder of MIDI files (or a prepared token cache).

Examples:
  tunesmith train data/midi --out runs/mine --max-steps 2000
  tunesmith train data/midi --out runs/mine --resume --max-steps 4000
  tunesmith train my-songs/ --out runs/ft --init-from path/to/checkpoint --max-steps 300
  torchrun --nproc-per-node 4 -m tunesmith.cli.main train data/midi --out runs/ddp
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tunesmith.errors import BadParameterError, TunesmithError

# CLI option -> TrainConfig field; every option defaults to None so that we know
# what the user gave (with --resume, what was not given comes from the run).
_OPTIONS: list[tuple[str, type, str]] = [
    ("--preset", str, "model preset: seed (the original), default (modern), tiny (tests)"),
    ("--tokenizer", str, "pairs (default), remi or tsd; a cache or --init-from fixes it"),
    ("--max-steps", int, "optimizer steps to train in all (mutually exclusive with --epochs)"),
    (
        "--epochs",
        float,
        "passes over the training windows (default 1 when --max-steps is not given)",
    ),
    ("--batch-size", int, "windows per step and process (default 16)"),
    ("--seq-len", int, "tokens per window (default 512); a new model's context"),
    (
        "--lr",
        float,
        "peak learning rate (cosine, default 1e-3) or multiplier of the Noam formula (default 1)",
    ),
    (
        "--schedule",
        str,
        "cosine (AdamW, default) or noam (the original's Adam + inverse-sqrt warmup)",
    ),
    ("--warmup-steps", int, "warmup steps (default: 5%% of the horizon up to 1000; 4000 for noam)"),
    (
        "--decay-steps",
        int,
        "cosine horizon in steps (default: --max-steps); stop earlier and resume later",
    ),
    ("--weight-decay", float, "AdamW weight decay on matrices (default 0.1)"),
    ("--grad-clip", float, "clip the gradient norm to this (default 1.0; 0 disables)"),
    ("--dropout", float, "override the preset's dropout"),
    ("--augment-transpose", int, "transpose each window by up to +-N semitones (default 0)"),
    (
        "--fim-rate",
        float,
        "share of training windows (0-1) rearranged to teach infilling (default 0; pairs tokenizer)",
    ),
    ("--eval-every", int, "evaluate, checkpoint and sample every N steps (default 200)"),
    ("--eval-batches", int, "evaluate on at most N batches of the val split (default all)"),
    ("--log-every", int, "log the training loss every N steps (default 10)"),
    (
        "--sample-notes",
        int,
        "notes in the sample written at each evaluation (default 64; 0 disables)",
    ),
    ("--seed", int, "seed of the initialisation, data order, dropout and augmentation (default 0)"),
    (
        "--precision",
        str,
        "auto (default: time fp32 and bf16 steps here at start-up, keep the faster), fp32 or bf16",
    ),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on MIDI files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data", metavar="DATA_DIR_OR_CACHE", help="a folder of MIDI files or a token cache"
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="the run folder (new, or existing with --resume)",
    )
    for flag, kind, text in _OPTIONS:
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument(
        "--config", metavar="FILE", help="a JSON file of TrainConfig fields; options given here win"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint"
    )
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (fine-tuning)",
    )
    p.add_argument(
        "--bar-positions",
        action="store_true",
        default=None,
        help="give the model an embedding of each token's position in the bar (0-15, from the "
        "running sum of SEP advances; pairs tokenizer). A model-shape option like --preset: "
        "kept in the checkpoint, fixed for --resume; with --init-from a checkpoint without "
        "it grows it, initialised to zeros (the same loss at the start)",
    )
    p.add_argument(
        "--wandb", action="store_true", default=None, help="also log to Weights & Biases"
    )
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None)
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads per process (default: torch's)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields the user set: from ``--config`` first, then the command line."""
    given: dict[str, Any] = {}
    if args.config:
        try:
            loaded = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise TunesmithError(f"--config {args.config}: unreadable ({err})") from None
        if not isinstance(loaded, dict):
            raise TunesmithError(
                f"--config {args.config}: must hold a JSON object of TrainConfig fields"
            )
        given.update(loaded.get("train", loaded))
    fields = [flag[2:].replace("-", "_") for flag, _, _ in _OPTIONS] + [
        "init_from",
        "bar_positions",
        "wandb",
        "tensorboard",
    ]
    given.update({k: getattr(args, k) for k in fields if getattr(args, k) is not None})
    return given


def _default_tokenizer(data: Path, init_from: str | None) -> str:
    """The tokenizer a run uses when none is given: the checkpoint's, else the cache's, else pairs."""
    if init_from is not None:
        from tunesmith.model.checkpoint import read_config

        return str(read_config(init_from).get("tokenizer", {}).get("type", "pairs"))
    from tunesmith.data.cache import is_cache_dir, read_meta

    if is_cache_dir(data):
        return str(read_meta(data).get("tokenizer", "pairs"))
    return "pairs"


def build_config(args: argparse.Namespace) -> Any:
    """The TrainConfig of a new run (or, with --resume, the run's own with the given changes)."""
    from tunesmith.training.config import TrainConfig
    from tunesmith.training.setup import resume_config

    given = given_options(args)
    if given.get("max_steps") is not None and given.get("epochs") is not None:
        raise BadParameterError("give either --max-steps or --epochs, not both")
    if args.resume:
        resumed = resume_config(args.out, given)
        if resumed is not None:
            return resumed
    if given.get("init_from") is not None:
        if "preset" in given:
            raise BadParameterError(
                "--preset and --init-from exclude each other (the checkpoint fixes the model)"
            )
        given["preset"] = None
    given.setdefault("tokenizer", _default_tokenizer(Path(args.data), given.get("init_from")))
    unknown = set(given) - set(TrainConfig().to_dict())
    if unknown:
        raise BadParameterError(f"--config: unknown field(s): {', '.join(sorted(unknown))}")
    if given.get("preset") is not None:
        from tunesmith.model.config import PRESETS

        if given["preset"] not in PRESETS:
            raise BadParameterError(
                f"--preset: unknown preset {given['preset']!r} (choose from {', '.join(PRESETS)})"
            )
    return TrainConfig.from_dict(given)


def run(args: argparse.Namespace) -> int:
    import torch

    from tunesmith.training.distributed import barrier, init_distributed, shutdown_distributed
    from tunesmith.training.trainer import Trainer

    if args.threads is not None:
        if args.threads < 1:
            raise BadParameterError(f"--threads must be at least 1, not {args.threads}")
        torch.set_num_threads(args.threads)
    cfg = build_config(args)
    dist = init_distributed()
    try:
        trainer = Trainer(
            cfg, args.data, args.out, resume=args.resume, dist=dist, progress=not args.quiet
        )
        final = trainer.run()
        barrier(dist)  # leave together: rank 0 hosts the rendezvous store
    finally:
        shutdown_distributed(dist)
    if dist.is_main:
        best = trainer.best_val
        print(
            f"trained {trainer.step} steps ({trainer.tokens_seen:,} tokens, {trainer.elapsed / 60:.1f} min): "
            f"train loss {final.get('loss', float('nan')):.4f}, best val loss {best:.4f}; "
            f"checkpoints in {Path(args.out) / 'best'} and {Path(args.out) / 'last'}"
        )
    return 0
