"""A short piece generated at each evaluation, so a run can be listened to as it learns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import symusic
import torch

from tunesmith.model.transformer import Transformer
from tunesmith.tokenization import Tokenizer
from tunesmith.tokenization.midi_io import save_midi


def _has_generator() -> bool:
    return importlib.util.find_spec("tunesmith.generation.generator") is not None


@torch.no_grad()
def sample_score(model: Transformer, tokenizer: Tokenizer, notes: int, seed: int) -> symusic.Score:
    """``notes`` new notes from nothing, top-k sampled with a seeded generator.

    Uses the project's :class:`Generator` when it is installed, else a small
    sampling loop over ``model(ids)`` (a fallback with no constraints).
    """
    was_training = model.training
    model.eval()
    # The global RNG drives dropout: sampling must not shift it, or a resumed run
    # (checkpointed before this sample) would diverge from an uninterrupted one.
    with torch.random.fork_rng(devices=[]):
        try:
            if _has_generator():
                from tunesmith.generation.generator import Generator

                gen = Generator(model, tokenizer)
                return gen.generate(None, notes=notes, search="top_k", seed=seed).score
            return _fallback(model, tokenizer, notes, seed)
        finally:
            model.train(was_training)


def _fallback(
    model: Transformer, tokenizer: Tokenizer, notes: int, seed: int, top_k: int = 8
) -> symusic.Score:
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids = list(tokenizer.prefix)
    # ~3 tokens a note for every tokenizer; the cap keeps a stuck model from looping forever.
    for _ in range(notes * 4):
        window = torch.tensor(ids[-model.cfg.context :], device=device)[None]
        logits, _ = model(window, last_only=True)
        logits = logits[0, -1].float().cpu()
        logits[tokenizer.pad_id] = float("-inf")
        top = torch.topk(logits, top_k)
        pick = top.indices[
            torch.multinomial(torch.softmax(top.values, -1), 1, generator=gen)
        ].item()
        if pick == tokenizer.eos_id or tokenizer.count_notes(ids) >= notes:
            break
        ids.append(int(pick))
    return tokenizer.decode(ids)


def save_sample(
    model: Transformer, tokenizer: Tokenizer, out_dir: Path, step: int, notes: int, seed: int
) -> Path:
    """Write ``out_dir/step_<step>.mid`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"step_{step:07d}.mid"
    save_midi(sample_score(model, tokenizer, notes, seed + step), path)
    return path
