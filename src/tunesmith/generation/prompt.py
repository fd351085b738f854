"""The prompt of a generation: read (a Score or a MIDI path), checked and encoded."""

from __future__ import annotations

import os

import numpy as np
import symusic

from tunesmith.errors import BadMidiError, BadParameterError
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import (
    PIANO_HIGH,
    PIANO_LOW,
    grid_notes,
    load_midi,
    score_from_grid,
)
from tunesmith.tokenization.pairs import PairTokenizer


def as_score(prompt: symusic.Score | str | os.PathLike[str] | None) -> symusic.Score | None:
    """The prompt as a Score: a path (str or PathLike) is read as a MIDI file."""
    if prompt is None or isinstance(prompt, symusic.Score):
        return prompt
    if isinstance(prompt, str | os.PathLike):
        return load_midi(prompt)
    raise BadParameterError(
        f"expected a symusic Score, a MIDI path or None, not {type(prompt).__name__}",
        field="prompt",
    )


def path_name(prompt: object) -> str | None:
    """A prompt given as a path names itself in errors."""
    return str(prompt) if isinstance(prompt, str | os.PathLike) else None


def check_prompt_notes(prompt_notes: object) -> None:
    """Refuse a ``prompt_notes`` that is not None or a whole number of 0 or more."""
    if prompt_notes is None:
        return
    if isinstance(prompt_notes, bool) or not isinstance(prompt_notes, int):
        raise BadParameterError(f"{prompt_notes!r} is not a whole number", field="prompt_notes")
    if prompt_notes < 0:
        raise BadParameterError(f"must be 0 or more, not {prompt_notes}", field="prompt_notes")


def encode_prompt(
    tokenizer: Tokenizer,
    prompt: symusic.Score | None,
    prompt_notes: int | None = None,
    prompt_name: str | None = None,
) -> tuple[list[int], int, np.ndarray]:
    """Ids of the prompt's first ``prompt_notes`` notes (all when None), their count and rows.

    ``prompt_name`` (the prompt's file) starts the error for a prompt without notes.
    """
    check_prompt_notes(prompt_notes)
    rows = np.zeros((0, 3), dtype=np.int32)
    if prompt is not None:
        rows = grid_notes(prompt)
        if len(rows) == 0 and prompt_notes != 0:
            where = f"{prompt_name}: the prompt" if prompt_name else "the prompt"
            raise BadMidiError(
                f"{where} has no notes in the piano range ({PIANO_LOW}-{PIANO_HIGH})"
            )
        if prompt_notes is not None:
            rows = rows[:prompt_notes]
    if isinstance(tokenizer, PairTokenizer):
        ids = tokenizer.encode_grid(rows).tolist()
    elif len(rows):
        ids = tokenizer.encode(score_from_grid(rows))
    else:
        ids = list(tokenizer.prefix)
    return ids, len(rows), rows


def long_prompt_warnings(prompt_ids: list[int], context: int) -> list[str]:
    """The warning for a prompt longer than the model's context (none when it fits)."""
    if len(prompt_ids) <= context:
        return []
    return [
        f"the prompt has {len(prompt_ids)} tokens, more than the model's context of {context}: "
        "the model sees its last part"
    ]
