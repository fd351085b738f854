"""Which pitch tokens a generation may play: the piano, ``--pitch-range`` and ``--scale``."""

from __future__ import annotations

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.midi_io import PIANO_HIGH, PIANO_LOW


def token_pitches(tokenizer: Tokenizer) -> np.ndarray:
    """``(V,)`` MIDI pitch of each pitch token, -1 elsewhere."""
    out = np.full(tokenizer.vocab_size, -1, dtype=np.int64)
    for i in np.flatnonzero(tokenizer.kinds == TokenKind.PITCH):
        name = tokenizer.token_str(int(i))
        digits = name.rsplit("_", 1)[-1]
        if digits.isdigit():
            out[i] = int(digits)
    return out


def pitch_allowed(tokenizer: Tokenizer, cfg: GenerationConfig) -> np.ndarray:
    """``(V,)`` bool: pitch tokens inside the piano, the pitch range and the scale."""
    pitches = token_pitches(tokenizer)
    lo, hi = cfg.pitch_bounds or (PIANO_LOW, PIANO_HIGH)
    ok = (pitches >= max(lo, PIANO_LOW)) & (pitches <= min(hi, PIANO_HIGH))
    scale = cfg.scale_pitch_classes
    if scale is not None:
        ok &= np.isin(pitches % 12, sorted(scale))
    if not ok.any():
        raise BadParameterError(
            f"--scale {cfg.scale} and --pitch-range {cfg.pitch_range} leave no pitch to play"
        )
    return ok


def check_candidates(tokenizer: Tokenizer, cfg: GenerationConfig) -> None:
    """Refuse a top-k offset that would drop every pitch and rest the rules allow."""
    if cfg.search != "top_k":
        return
    n_pitches = int(pitch_allowed(tokenizer, cfg).sum())  # also refuses a scale/range with none
    if cfg.top_k_offset >= n_pitches + 1:
        raise BadParameterError(
            f"{cfg.top_k_offset} leaves no candidate "
            f"(the scale and pitch range allow {n_pitches} pitches and the rest)",
            field="top_k_offset",
        )
