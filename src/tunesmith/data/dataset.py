"""Reading a token cache, and the training windows served from it.

Windows are file-aligned: a window never spans two files, so the model never
learns a transition from one piece into an unrelated one; a file shorter than a
window gives one PAD-padded window. Within a file, windows of ``seq_len + 1``
tokens start every ``seq_len // 2`` tokens (50% overlap, as in the original
project), and the file's last window ends with EOS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tunesmith.data import cache
from tunesmith.data.infill import FimWindow, fim_window
from tunesmith.data.split import SPLITS
from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.tokenization import canonical_name, tokenizer_from_dict
from tunesmith.tokenization.bar_clock import bar_positions
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.midi_io import PIANO_HIGH, PIANO_LOW

_PITCH_TOKEN = re.compile(r"^Pitch_(\d+)$")
_FIM_STREAM = 1  # the 4th seed word: FIM draws never move the transposition's


class TokenCache:
    """A prepared cache folder: its meta, tokenizer, and per-split memory-mapped ids.

    ``tokenizer`` (a name) makes opening fail clearly when the cache was made with
    another tokenizer.
    """

    def __init__(self, path: str | Path, tokenizer: str | None = None) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = cache.read_meta(self.path)
        name = canonical_name(str(self.meta.get("tokenizer")))
        if tokenizer is not None and name != canonical_name(tokenizer):
            raise TunesmithError(
                f"{self.path}: this cache was prepared with the {name!r} tokenizer, not {tokenizer!r}; "
                f"prepare it again with --tokenizer {tokenizer}"
            )
        try:
            tok_data = json.loads((self.path / cache.TOKENIZER_FILE).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise TunesmithError(
                f"{self.path}: cannot read {cache.TOKENIZER_FILE} ({err})"
            ) from None
        self.tokenizer: Tokenizer = tokenizer_from_dict(tok_data)
        if self.tokenizer.name != name or self.tokenizer.vocab_size != self.meta.get("vocab_size"):
            raise TunesmithError(
                f"{self.path}: {cache.TOKENIZER_FILE} does not match {cache.META_FILE}"
            )
        self._spans = {s: self._load_spans(s) for s in SPLITS}
        self._files = self._load_files()
        self._arrays: dict[str, np.ndarray] = {}

    def _load_spans(self, split: str) -> np.ndarray:
        idx_path, bin_path = self.path / cache.idx_file(split), self.path / cache.bin_file(split)
        try:
            spans = np.load(idx_path, allow_pickle=False).astype(np.int64).reshape(-1, 2)
            n_tokens = bin_path.stat().st_size // np.dtype(cache.TOKEN_DTYPE).itemsize
        except (OSError, ValueError) as err:
            raise TunesmithError(f"{self.path}: damaged token cache ({split}: {err})") from None
        if len(spans) and (
            spans.min() < 0 or spans.max() > n_tokens or (spans[:, 1] < spans[:, 0]).any()
        ):
            raise TunesmithError(
                f"{self.path}: damaged token cache ({idx_path.name} points outside {bin_path.name})"
            )
        return spans

    def _load_files(self) -> dict[str, list[str]]:
        files: dict[str, list[str]] = {s: [] for s in SPLITS}
        try:
            with open(self.path / cache.MANIFEST_FILE) as fh:
                for line in fh:
                    row = json.loads(line)
                    if row.get("status") == "ok" and row.get("split") in files:
                        files[row["split"]].append(row["file"])
        except (OSError, json.JSONDecodeError) as err:
            raise TunesmithError(f"{self.path}: unreadable {cache.MANIFEST_FILE} ({err})") from None
        for s in SPLITS:
            if len(files[s]) != len(self._spans[s]):
                raise TunesmithError(
                    f"{self.path}: {cache.MANIFEST_FILE} and {cache.idx_file(s)} disagree"
                )
        return files

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in the receiving process instead of being copied.
        return {**self.__dict__, "_arrays": {}}

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def tokens(self, split: str) -> np.ndarray:
        """All ids of ``split`` (uint16, read-only, memory-mapped)."""
        if split not in SPLITS:
            raise BadParameterError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        if split not in self._arrays:
            path = self.path / cache.bin_file(split)
            size = path.stat().st_size
            # np.memmap refuses empty files; an empty split is just an empty array.
            self._arrays[split] = (
                np.memmap(path, dtype=cache.TOKEN_DTYPE, mode="r")
                if size
                else np.zeros(0, dtype=cache.TOKEN_DTYPE)
            )
        return self._arrays[split]

    def spans(self, split: str) -> np.ndarray:
        """``(n_files, 2)`` int64 ``[start, end)`` of each file in :meth:`tokens`."""
        self.tokens(split)  # validates the name
        return self._spans[split]

    def files(self, split: str) -> list[str]:
        """Relative paths of the split's files, in the order of :meth:`spans`."""
        self.tokens(split)
        return list(self._files[split])

    def file_tokens(self, split: str, index: int) -> np.ndarray:
        start, end = self.spans(split)[index]
        return self.tokens(split)[start:end]


def pitch_tables(tok: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """``pitch_of_id`` (vocab,) with -1 for non-pitch ids, and ``id_of_pitch`` (128,) with -1 gaps.

    Only single-pitch ids (``Pitch_N``) can be transposed; BPE ids that merge a
    pitch with other tokens make transposition impossible and raise.
    """
    pitch_of_id = np.full(tok.vocab_size, -1, dtype=np.int64)
    id_of_pitch = np.full(128, -1, dtype=np.int64)
    for i in np.flatnonzero(tok.kinds == TokenKind.PITCH):
        match = _PITCH_TOKEN.match(tok.token_str(int(i)))
        if match is None:
            raise BadParameterError(
                f"transposition augmentation needs plain pitch tokens; {tok.token_str(int(i))!r} "
                "is a merged (BPE) token: use augment_transpose=0"
            )
        pitch_of_id[i] = int(match.group(1))
        id_of_pitch[int(match.group(1))] = i
    return pitch_of_id, id_of_pitch


class WindowDataset(Dataset):
    """``(input, target)`` int64 windows of length ``seq_len`` over one split of a cache.

    ``target`` is ``input`` shifted by one; padding positions hold PAD in both, so
    a loss with ``ignore_index=tokenizer.pad_id`` skips them. With
    ``augment_transpose=N`` each window is transposed by a shift in ``[-N, N]``
    drawn from ``(seed, epoch, index)`` and narrowed so every note stays in 21-108.
    With ``fim_rate=r`` (pairs tokenizer only) a share ``r`` of the windows, drawn
    from ``(seed, epoch, index)`` too, is rearranged for fill-in-the-middle
    (:func:`tunesmith.data.infill.fim_window`; ids from the pairs tokenizer with
    ``infill=True``); a window with no whole bar to cut stays left-to-right.
    With ``bar_positions`` (pairs tokenizer only) an item is ``(input, target,
    positions)``: each input id's position in the bar
    (:func:`tunesmith.tokenization.bar_clock.bar_positions`), counted from its file's start.
    """

    def __init__(
        self,
        cache_or_path: TokenCache | str | Path,
        split: str = "train",
        seq_len: int = 512,
        augment_transpose: int = 0,
        seed: int = 0,
        fim_rate: float = 0.0,
        bar_positions: bool = False,
    ) -> None:
        if seq_len < 2:
            raise BadParameterError(f"seq_len: {seq_len} must be at least 2")
        if not 0 <= augment_transpose <= 12:
            raise BadParameterError(
                f"augment_transpose: {augment_transpose} must be within 0-12 semitones"
            )
        if seed < 0:
            raise BadParameterError(f"seed: {seed} must be >= 0")
        if not 0.0 <= fim_rate <= 1.0:
            raise BadParameterError(f"fim_rate: {fim_rate} must be within 0-1")
        self.cache = (
            cache_or_path if isinstance(cache_or_path, TokenCache) else TokenCache(cache_or_path)
        )
        if fim_rate > 0:
            self.cache.tokenizer.with_infill()  # raises for a tokenizer without FIM ids
        if bar_positions and self.cache.tokenizer.name != "pairs":
            raise BadParameterError(
                f"bar positions need the pairs tokenizer, not {self.cache.tokenizer.name!r}"
            )
        self.fim_rate, self.bar_positions = fim_rate, bar_positions
        self._file_positions: dict[int, np.ndarray] = {}  # filled as windows are read
        self.split, self.seq_len, self.augment, self.seed = split, seq_len, augment_transpose, seed
        self.epoch = 0
        tok = self.cache.tokenizer
        self.pad_id, self.eos_id = tok.pad_id, tok.eos_id
        self._pitch_of_id, self._id_of_pitch = (
            pitch_tables(tok) if augment_transpose else (None, None)
        )
        self.stride = max(1, seq_len // 2)
        spans = self.cache.spans(split)
        starts, files = [], []
        span = seq_len + 1
        for f, (a, b) in enumerate(spans.tolist()):
            length = b - a + 1  # with the EOS the dataset appends
            n = 1 if length <= span else 1 + -(-(length - span) // self.stride)
            starts.append(a + self.stride * np.arange(n, dtype=np.int64))
            files.append(np.full(n, f, dtype=np.int64))
        self._starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        self._files = np.concatenate(files) if files else np.zeros(0, dtype=np.int64)
        self._ends = spans[:, 1].copy()

    def set_epoch(self, epoch: int) -> None:
        """Pick new transpositions: shifts depend on ``(seed, epoch, index)``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._starts)

    def window(self, index: int) -> tuple[int, int, int]:
        """``(file_index, start, stop)`` of a window, positions within its file's ids."""
        f = int(self._files[index])
        file_start = int(self.cache.spans(self.split)[f, 0])
        start = int(self._starts[index])
        stop = min(start + self.seq_len + 1, int(self._ends[f]) + 1)
        return f, start - file_start, stop - file_start

    def window_ids(self, index: int) -> np.ndarray:
        """The ``seq_len + 1`` ids of a window (EOS at the file's end, then PAD), transposed."""
        return self.window_sample(index)[0]

    def window_sample(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """A window's ids and, for a FIM window, which ids are no target (else None)."""
        ids, no_target, _ = self._sample(index, positions=False)
        return ids, no_target

    def window_positions(self, index: int) -> np.ndarray:
        """The ``seq_len + 1`` positions in the bar of a window's ids (see ``bar_positions``)."""
        positions = self._sample(index, positions=True)[2]
        assert positions is not None
        return positions

    def _sample(
        self, index: int, positions: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """A window's ids, its no-target mask (FIM windows) and, if asked, its positions."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range (0-{len(self) - 1})")
        f = int(self._files[index])
        start, end = int(self._starts[index]), int(self._ends[f])
        span = self.seq_len + 1
        ids = np.full(span, self.pad_id, dtype=np.int64)
        chunk = np.asarray(
            self.cache.tokens(self.split)[start : min(start + span, end)], dtype=np.int64
        )
        ids[: len(chunk)] = chunk
        if len(chunk) < span:  # the window reaches the end of the file
            ids[len(chunk)] = self.eos_id
        if self.augment:
            self._transpose(ids, index)
        if self.fim_rate > 0:
            fim = self._fim(ids[: len(chunk)], f, start, len(chunk) < span, index)
            if fim is not None:
                pos = bar_positions(fim.ids, fim.first_step) if positions else None
                return fim.ids, fim.no_target, pos
        return ids, None, self._plain_positions(f, start, span) if positions else None

    def _plain_positions(self, f: int, start: int, span: int) -> np.ndarray:
        """Positions of a left-to-right window from ``start``: its file's, then the last one
        repeated (EOS and PAD keep the time)."""
        if f not in self._file_positions:
            self._file_positions[f] = bar_positions(self.cache.file_tokens(self.split, f))
        file_pos = self._file_positions[f]
        offset = start - int(self.cache.spans(self.split)[f, 0])
        part = file_pos[offset : offset + span]
        out = np.full(span, file_pos[-1] if len(file_pos) else 0, dtype=np.int64)
        out[: len(part)] = part
        return out

    def _fim(
        self, window: np.ndarray, f: int, start: int, at_end: bool, index: int
    ) -> FimWindow | None:
        rng = np.random.default_rng([self.seed, self.epoch, index, _FIM_STREAM])
        if rng.random() >= self.fim_rate:
            return None
        file_start = int(self.cache.spans(self.split)[f, 0])
        before = np.asarray(self.cache.tokens(self.split)[file_start:start], dtype=np.int64)
        return fim_window(before, window, at_end, self.seq_len + 1, rng)

    def _transpose(self, ids: np.ndarray, index: int) -> None:
        pitches = self._pitch_of_id[ids]
        is_pitch = pitches >= 0
        if not is_pitch.any():
            return
        low = max(-self.augment, PIANO_LOW - int(pitches[is_pitch].min()))
        high = min(self.augment, PIANO_HIGH - int(pitches[is_pitch].max()))
        if low > high:  # a note already outside the piano: leave the window alone
            return
        rng = np.random.default_rng([self.seed, self.epoch, index])
        shift = int(rng.integers(low, high + 1))
        ids[is_pitch] = self._id_of_pitch[pitches[is_pitch] + shift]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        ids, no_target, pos = self._sample(index, self.bar_positions)
        x, y = torch.from_numpy(ids[:-1].copy()), torch.from_numpy(ids[1:].copy())
        if no_target is not None:  # ids the data pipeline chose at random: nothing to learn
            y[torch.from_numpy(no_target[1:])] = self.pad_id
        if pos is None:
            return x, y
        return x, y, torch.from_numpy(pos[:-1].astype(np.int64))
