"""The data an evaluation reads: each split's files as token ids and as grid notes.

It comes from a token cache (the one a checkpoint was trained on, or ``--data``
pointing at one) or from a folder of MIDI files, tokenized in memory with the
model's tokenizer and split exactly as ``prepare`` splits it. Grids are decoded
from the ids in both cases, so the real pieces and the memorisation index hold
what the model was shown (e.g. durations capped as the tokenizer caps them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data import cache as cache_layout
from tunesmith.data.split import DEFAULT_FRACTIONS, SPLITS, assign_splits
from tunesmith.errors import TunesmithError
from tunesmith.evaluation.memorisation import MemorisationIndex
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import grid_notes
from tunesmith.tokenization.pairs import PairTokenizer


@dataclass
class Corpus:
    """Files per split, their ids, and (decoded on first use) their grid notes."""

    description: str  # where the data came from, for the report
    tokenizer: Tokenizer
    files: dict[str, list[str]]
    ids: dict[str, list[np.ndarray]]
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), not used
    _grids: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def grids(self, split: str) -> list[np.ndarray]:
        """``(step, pitch, dur)`` rows of each file of ``split``, decoded from its ids."""
        if split not in self._grids:
            self._grids[split] = [ids_to_grid(self.tokenizer, ids) for ids in self.ids[split]]
        return self._grids[split]

    def counts(self) -> dict[str, int]:
        return {s: len(self.files[s]) for s in SPLITS}


def ids_to_grid(tokenizer: Tokenizer, ids: np.ndarray) -> np.ndarray:
    """Grid notes of token ids (the pairs tokenizer decodes straight to a grid)."""
    if isinstance(tokenizer, PairTokenizer):
        return tokenizer.decode_grid(ids).astype(np.int64)
    return grid_notes(tokenizer.decode(np.asarray(ids).tolist())).astype(np.int64)


def from_cache(path: Path, tokenizer: Tokenizer) -> Corpus:
    """A prepared token cache; refused when it was made with another tokenizer than the model's."""
    from tunesmith.data.dataset import TokenCache

    tc = TokenCache(path)
    # A model trained for infilling has the fill-in ids on top of the cache's tokenizer.
    if tc.tokenizer.to_dict() != tokenizer.without_infill().to_dict():
        raise TunesmithError(
            f"{path}: this token cache was prepared with the {tc.tokenizer.name!r} tokenizer, "
            f"but the model uses {tokenizer.name!r}; pass --data with a MIDI folder instead"
        )
    files = {s: tc.files(s) for s in SPLITS}
    ids = {
        s: [np.asarray(tc.file_tokens(s, i), dtype=np.int64) for i in range(len(files[s]))]
        for s in SPLITS
    }
    return Corpus(f"token cache {path}", tokenizer, files, ids, _cache_rejects(path))


def _cache_rejects(path: Path) -> list[tuple[str, str]]:
    """The files ``prepare`` rejected when it made the cache, with its reasons (its manifest)."""
    rejected = []
    # TokenCache has read this manifest already, so it is known to be readable JSON lines.
    with open(path / cache_layout.MANIFEST_FILE) as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("status") != "ok":
                rejected.append((str(row.get("file")), str(row.get("reason") or "rejected")))
    return rejected


def from_folder(path: Path, tokenizer: Tokenizer, fractions: Any = DEFAULT_FRACTIONS) -> Corpus:
    """Tokenize a MIDI folder in memory and split it as ``prepare`` would."""
    from tunesmith.data.prepare import find_midi_files, tokenize_files

    rels = find_midi_files(path)
    if not rels:
        raise TunesmithError(f"{path}: no .mid or .midi files in this folder or below it")
    tokenized = tokenize_files(tokenizer, path, rels, workers=1, progress=False)
    results = [r for r in tokenized if r.status == "ok"]
    rejected = [(r.file, r.reason) for r in tokenized if r.status != "ok"]
    if not results:
        first = f" ({rejected[0][0]}: {rejected[0][1]})" if rejected else ""
        raise TunesmithError(f"{path}: none of the {len(rels)} MIDI files is usable{first}")
    splits = assign_splits([r.file for r in results], fractions)
    files: dict[str, list[str]] = {s: [] for s in SPLITS}
    ids: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for r in results:  # results are in sorted-path order, as prepare writes them
        files[splits[r.file]].append(r.file)
        ids[splits[r.file]].append(np.asarray(r.tokens, dtype=np.int64))
    return Corpus(f"MIDI folder {path}", tokenizer, files, ids, rejected)


def open_corpus(path: str | Path, tokenizer: Tokenizer) -> Corpus:
    """A token cache or a MIDI folder at ``path`` (a one-line error for anything else)."""
    path = Path(path)
    if not path.exists():
        raise TunesmithError(f"{path}: no such data folder")
    if not path.is_dir():
        raise TunesmithError(
            f"{path}: is a file; --data needs a folder of MIDI files or a token cache"
        )
    if cache_layout.is_cache_dir(path):
        return from_cache(path, tokenizer)
    return from_folder(path, tokenizer)


def model_data_path(config: dict[str, Any], model_path: Path) -> Path:
    """The data a checkpoint was trained on: its token cache if still there, else its MIDI folder.

    Raises a one-line error asking for ``--data`` when the checkpoint records no
    data or when both are gone.
    """
    data = config.get("data") or {}
    candidates = [data.get("cache"), data.get("source")]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    where = data.get("source") or data.get("cache")
    if not where:
        raise TunesmithError(
            f"{model_path}: the checkpoint records no training data; pass --data DIR"
        )
    raise TunesmithError(f"{model_path}: its training data ({where}) is gone; pass --data DIR")


def require_held_out(corpus: Corpus) -> None:
    """Evaluation needs at least one test or val file, and training files to check copies against."""
    counts = corpus.counts()
    if counts["test"] + counts["val"] == 0:
        raise TunesmithError(
            f"{corpus.description}: no test or val files to evaluate on ({counts['train']} file(s), all in train); "
            "use a folder with at least 3 usable MIDI files"
        )


def build_training_index(data: str | Path, tokenizer: Tokenizer) -> MemorisationIndex:
    """The memorisation index of the train split of a token cache or MIDI folder.

    Saved as :data:`~tunesmith.evaluation.memorisation.INDEX_FILE` in a checkpoint,
    it lets ``generate`` and the UI report copies without the training data.
    """
    corpus = open_corpus(data, tokenizer)
    return MemorisationIndex.build(corpus.grids("train"), corpus.files["train"])
