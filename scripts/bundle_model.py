"""Copy a trained checkpoint into the package as the bundled model.

    python scripts/bundle_model.py runs/ff-default/best

Stores the weights as float16 (half the size; logits checked against float32),
drops the training state, and adds the memorisation index of the training split
so that `generate` and the web UI can report copies without the training data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tunesmith.evaluation.corpus import build_training_index
from tunesmith.evaluation.memorisation import INDEX_FILE
from tunesmith.model import bundled_model_path, load_checkpoint, save_checkpoint
from tunesmith.tokenization.bar_clock import bar_positions


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", type=Path, help="the training data (default: the checkpoint's own)")
    ap.add_argument("--out", type=Path, default=bundled_model_path())
    args = ap.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    data = args.data or Path(ckpt.config["data"]["source"])
    index = build_training_index(data, ckpt.tokenizer)
    extra = {
        k: v for k, v in ckpt.config.items() if k not in ("format", "version", "model", "tokenizer")
    }
    extra["data"] = {
        **extra.get("data", {}),
        "cache": None,
        "source": "../shared/datasets/final-fantasy-piano",
    }
    save_checkpoint(args.out, ckpt.model, ckpt.tokenizer, extra=extra, dtype=torch.float16)
    index.save(args.out / INDEX_FILE)
    half = load_checkpoint(args.out)
    ids = torch.randint(
        4, ckpt.tokenizer.vocab_size, (1, 256), generator=torch.Generator().manual_seed(0)
    )
    pos = None  # a bar-aware model takes the ids' positions in the bar as well
    if ckpt.model.cfg.bar_positions:
        pos = torch.from_numpy(bar_positions(ids[0].numpy()).astype("int64"))[None]
    with torch.inference_mode():
        diff = (
            (half.model(ids, bar_pos=pos)[0] - ckpt.model(ids, bar_pos=pos)[0]).abs().max().item()
        )
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(
        f"bundled {args.checkpoint} -> {args.out}: {size / 1e6:.1f} MB, max logit change from float16 {diff:.2e}"
    )


if __name__ == "__main__":
    main()
