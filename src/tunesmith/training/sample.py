"""A short piece generated at each evaluation, so a run can be listened to as it learns."""

from __future__ import annotations

from pathlib import Path

import symusic
import torch

from tunesmith.generation.generator import Generator
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization import Tokenizer
from tunesmith.tokenization.midi_io import save_midi


@torch.no_grad()
def sample_score(model: Transformer, tokenizer: Tokenizer, notes: int, seed: int) -> symusic.Score:
    """``notes`` new notes from nothing, top-k sampled by the project's :class:`Generator`."""
    was_training = model.training
    model.eval()
    # The global RNG drives dropout: sampling must not shift it, or a resumed run
    # (checkpointed before this sample) would diverge from an uninterrupted one.
    with torch.random.fork_rng(devices=[]):
        try:
            gen = Generator(model, tokenizer)
            return gen.generate(None, notes=notes, search="top_k", seed=seed).score
        finally:
            model.train(was_training)


def save_sample(
    model: Transformer, tokenizer: Tokenizer, out_dir: Path, step: int, notes: int, seed: int
) -> Path:
    """Write ``out_dir/step_<step>.mid`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"step_{step:07d}.mid"
    save_midi(sample_score(model, tokenizer, notes, seed + step), path)
    return path
