"""The training notes a checkpoint carries (``memorisation.npz``), read without the evaluation layer.

The file holds every note of the training split as pitch and duration arrays, with
each file's offset and name. :mod:`tunesmith.evaluation.memorisation` indexes it to
measure copies after the fact; the copy guard
(:mod:`tunesmith.generation.copyguard`) reads it to forbid copies while decoding.
The format lives here, in the lower layer, so that both read it one way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tunesmith.errors import TunesmithError

FORMAT_VERSION = 1
INDEX_FILE = "memorisation.npz"  # a checkpoint's notes of its training split, when it carries one


class NoteArrays(Protocol):
    """What reads training notes: :class:`TrainingNotes`, or a ``MemorisationIndex``."""

    pitches: np.ndarray
    durs: np.ndarray
    offsets: np.ndarray
    names: list[str]


@dataclass(frozen=True)
class TrainingNotes:
    """Every training note in file order: ``pitches``, ``durs``, file ``offsets`` and ``names``."""

    pitches: np.ndarray
    durs: np.ndarray
    offsets: np.ndarray  # one more than names: file i holds notes offsets[i]:offsets[i + 1]
    names: list[str]


def read_training_notes(path: str | os.PathLike[str]) -> TrainingNotes:
    """Read an index file; a missing, foreign or newer file is one error naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["version"])
            if version != FORMAT_VERSION:
                raise TunesmithError(
                    f"{path}: memorisation index version {version} is not supported"
                )
            return TrainingNotes(
                data["pitches"], data["durs"], data["offsets"], [str(n) for n in data["names"]]
            )
    except (OSError, KeyError, ValueError) as err:
        raise TunesmithError(f"{path}: not a memorisation index ({err})") from None


def checkpoint_training_notes(
    checkpoint_dir: str | os.PathLike[str] | None,
) -> TrainingNotes | None:
    """The notes a checkpoint folder carries (:data:`INDEX_FILE`), or None if it has none."""
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / INDEX_FILE
    return read_training_notes(path) if path.is_file() else None
