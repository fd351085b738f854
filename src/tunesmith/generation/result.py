"""``GenerationResult``: what a generation returns, and how decoded ids become one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import symusic

from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.decoded import Decoded
from tunesmith.generation.pitch_masks import pitch_allowed, token_pitches
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import grid_notes
from tunesmith.tokenization.pairs import PairTokenizer

NO_LEGAL_NOTE = "no legal note"  # the stop reason when the rules forbid every further note


@dataclass
class GenerationResult:
    """A generated piece: the prompt's notes first, then the new ones.

    From :meth:`Generator.infill`: ``grid`` is the whole piece by onset, ``span`` the
    regenerated steps, ``n_prompt_notes`` the notes kept and ``n_new_notes`` those in the span.
    """

    score: symusic.Score
    grid: np.ndarray  # (N, 3) step, pitch, duration; the first n_prompt_notes rows are the prompt's
    ids: list[int]
    prompt_length: int  # ids of the prompt (prefix included)
    n_prompt_notes: int
    n_new_notes: int
    seconds: float
    tokens_per_second: float
    stop_reason: str  # "eos" | "length" | "cancelled" | "no legal note"
    config: GenerationConfig
    bpm: float
    warnings: list[str] = field(default_factory=list)
    memorisation: Any = None  # filled in by the evaluation layer when an index is at hand
    span: tuple[int, int] | None = None  # infill: [start, stop) grid steps regenerated
    backend: str = "torch"  # the decoding step that made it: "torch" or "onnx"
    sampler: str = "torch"  # who drew its ids (generation/sampler.py): "torch" or "numpy"

    @property
    def new_ids(self) -> list[int]:
        return self.ids[self.prompt_length :]


def decode_rate(decoded: Decoded, seconds: float) -> float:
    """Tokens decoded per second."""
    return len(decoded.ids) / seconds if seconds > 0 else 0.0


def no_legal_note(
    tokenizer: Tokenizer, cfg: GenerationConfig, grid: np.ndarray, n_new: int, stop_reason: str
) -> bool:
    """Whether decoding stopped short of ``notes`` because the rules forbid every note.

    Stopping on length short of the target means the safety net ran out while
    only rests were legal. An EOS short of it counts when the one pitch the scale
    and range allow has reached ``max_repeat`` (the only rule that never lifts).
    """
    if cfg.bars is not None or n_new >= (cfg.notes or 0):
        return False
    if not isinstance(tokenizer, PairTokenizer):
        return False  # no grammar guarantees progress there: a short piece is the model's
    if stop_reason == "length":
        return True
    if stop_reason != "eos" or cfg.max_repeat is None or len(grid) < cfg.max_repeat:
        return False
    allowed = np.flatnonzero(pitch_allowed(tokenizer, cfg))
    if len(allowed) != 1:
        return False
    only = token_pitches(tokenizer)[allowed[0]]
    return bool((grid[-cfg.max_repeat :, 1] == only).all())


def continuation_result(
    tokenizer: Tokenizer,
    prompt_ids: list[int],
    n_prompt: int,
    decoded: Decoded,
    seconds: float,
    cfg: GenerationConfig,
    bpm: float,
    warnings: list[str],
) -> GenerationResult:
    """The prompt and the decoded ids as a piece; a short stop the rules forced is said so."""
    ids = prompt_ids + decoded.ids
    score = tokenizer.decode(ids, bpm=bpm)
    grid = tokenizer.decode_grid(ids) if isinstance(tokenizer, PairTokenizer) else grid_notes(score)
    n_new = max(0, len(grid) - n_prompt)
    stop_reason = decoded.stop_reason
    if no_legal_note(tokenizer, cfg, grid, n_new, stop_reason):
        stop_reason = NO_LEGAL_NOTE
        warnings.append(
            f"the rules (scale, pitch range, max repeat, polyphony) left no legal note "
            f"after {n_new} of {cfg.notes} new notes"
        )
    return GenerationResult(
        score=score,
        grid=grid,
        ids=ids,
        prompt_length=len(prompt_ids),
        n_prompt_notes=n_prompt,
        n_new_notes=n_new,
        seconds=seconds,
        tokens_per_second=decode_rate(decoded, seconds),
        stop_reason=stop_reason,
        config=cfg,
        bpm=bpm,
        warnings=warnings,
    )
