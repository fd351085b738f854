"""``remi`` and ``tsd``: miditok 3.x tokenizers behind tunesmith's :class:`Tokenizer`.

Configuration: velocities (32 bins) and tempos (32 bins, repeated equal tempos
dropped) are on; pitches 21-108; specials ``PAD BOS EOS`` (ids 0, 1, 2); no
time-signature, program, drum or rest tokens, so REMI bars are 4/4 bars. Any
``TokenizerConfig`` field can be overridden by keyword.

Tracks: before miditok sees a score, every non-drum track is merged into one piano
track at the file's own resolution (velocities and miditok's finer time grid are
kept; this is *not* :func:`grid_notes`, whose 16th grid would throw away exactly
what these tokenizers are for). miditok then tokenizes that single track, so its
``one_token_stream``/program machinery is not needed.

Ids are miditok's own (BPE ids once :meth:`MidiTokTokenizer.train_bpe` has run),
padded to a multiple of 8; padding ids are :attr:`TokenKind.OTHER` and decode to
nothing. A BPE id that stands for several base tokens takes the kind of the most
telling one it contains (pitch > duration > time shift > other), and
:meth:`count_notes` counts the pitches inside such ids.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import miditok
import numpy as np
import symusic
from miditok import TokSequence

from tunesmith.errors import BadMidiError, BadParameterError, TunesmithError
from tunesmith.tokenization.base import Tokenizer, TokenKind, pad_to_multiple
from tunesmith.tokenization.midi_io import DEFAULT_BPM, OUTPUT_TPQ, PIANO_HIGH, PIANO_LOW, load_midi

_CLASSES = {"remi": miditok.REMI, "tsd": miditok.TSD}
_SPECIALS = ("PAD", "BOS", "EOS")
_MAX_CACHE_VOCAB = 65536  # token caches store ids as uint16

# Token type (the part before "_") -> kind; anything not listed is OTHER.
_TYPE_KIND = {
    "Pitch": TokenKind.PITCH,
    "Duration": TokenKind.DURATION,
    "TimeShift": TokenKind.SEPARATOR,
    "Rest": TokenKind.SEPARATOR,
    **{s: TokenKind.SPECIAL for s in _SPECIALS},
}
_KIND_RANK = [TokenKind.PITCH, TokenKind.DURATION, TokenKind.SEPARATOR, TokenKind.OTHER]


def default_config(**overrides: Any) -> miditok.TokenizerConfig:
    """tunesmith's miditok configuration (see the module docstring), with ``overrides``."""
    params: dict[str, Any] = {
        "pitch_range": (PIANO_LOW, PIANO_HIGH),  # inclusive in miditok 3
        "use_velocities": True,
        "use_tempos": True,
        "delete_equal_successive_tempo_changes": True,
        "use_time_signatures": False,
        "use_programs": False,
        "use_pitchdrum_tokens": False,  # drum tracks are dropped before tokenizing
        "special_tokens": list(_SPECIALS),
    }
    params.update(overrides)
    return miditok.TokenizerConfig(**params)


def merge_piano(score: symusic.Score) -> symusic.Score:
    """One piano track holding the notes of every non-drum track (times untouched)."""
    out = symusic.Score(score.tpq)
    out.tempos = score.tempos.copy()
    out.time_signatures = score.time_signatures.copy()
    out.tracks.append(_sorted_track([t for t in score.tracks if not t.is_drum]))
    return out


def _sorted_track(tracks: Sequence[symusic.Track]) -> symusic.Track:
    """One piano track with the notes of ``tracks`` in a canonical order.

    Notes are ordered by (time, pitch, duration, velocity), a total order, so that
    notes sharing an onset are always written the same way, whatever their order in
    the file: that is what makes ``encode(decode(ids)) == ids``.
    """
    track = symusic.Track("Piano", program=0, is_drum=False)
    parts = [t.notes.numpy() for t in tracks if len(t.notes)]
    if parts:
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        order = np.lexsort((cols["velocity"], cols["duration"], cols["pitch"], cols["time"]))
        track.notes = symusic.Note.from_numpy(**{k: v[order] for k, v in cols.items()})
    return track


class _BpeCorpus:
    """Training files as miditok's BPE trainer wants them: per file, one byte string per bar.

    Files go through the guarded :func:`load_midi`; unreadable ones contribute nothing.
    """

    def __init__(self, tok: MidiTokTokenizer, files: Sequence[str | os.PathLike[str]]) -> None:
        self.tok, self.files = tok, list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[list[str]]:
        mt = self.tok.miditok
        for path in self.files:
            try:
                score = load_midi(path)
            except BadMidiError:
                yield []
                continue
            pre = self.tok.preprocess(score)
            seqs = mt.encode(pre, encode_ids=False, no_preprocess_score=True)
            bars = [bar for seq in seqs for bar in seq.split_per_bars() if len(bar)]
            # miditok's own training iterator converts ids to bytes the same way.
            yield [mt._ids_to_bytes(bar.ids, as_one_str=True) for bar in bars]


class MidiTokTokenizer(Tokenizer):
    """REMI or TSD through miditok; see the module docstring for the configuration."""

    def __init__(
        self,
        name: str = "remi",
        bpe_vocab_size: int | None = None,
        *,
        _miditok: miditok.MusicTokenizer | None = None,
        **config: Any,
    ) -> None:
        if name not in _CLASSES:
            raise TunesmithError(f"--tokenizer: unknown miditok tokenizer {name!r} (remi or tsd)")
        self.name = name
        self.bpe_vocab_size = bpe_vocab_size
        self.miditok: miditok.MusicTokenizer = _miditok or _CLASSES[name](default_config(**config))
        self._build_tables()

    def _build_tables(self) -> None:
        """Id -> base tokens, kinds and pitch counts, for base or BPE ids alike."""
        mt = self.miditok
        n = len(mt)  # BPE model vocab when trained, base vocab otherwise
        if mt.is_trained:
            expand: list[list[str]] = []
            for i in range(n):
                seq = TokSequence(ids=[i], are_ids_encoded=True)
                mt.decode_token_ids(seq)
                expand.append(list(seq.tokens))
        else:
            inv = {i: tok for tok, i in mt.vocab.items()}
            expand = [[inv[i]] for i in range(n)]
        self._expand = expand
        self._n_model = n
        self._vocab_size = pad_to_multiple(n)
        kinds = np.full(self._vocab_size, TokenKind.OTHER, dtype=np.uint8)
        n_pitches = np.zeros(self._vocab_size, dtype=np.int64)
        for i, toks in enumerate(expand):
            found = {_TYPE_KIND.get(t.split("_")[0], TokenKind.OTHER) for t in toks}
            if len(toks) == 1 and TokenKind.SPECIAL in found:
                kinds[i] = TokenKind.SPECIAL
            else:
                kinds[i] = next((k for k in _KIND_RANK if k in found), TokenKind.OTHER)
            n_pitches[i] = sum(t.startswith("Pitch_") for t in toks)
        self._kinds, self._n_pitches = kinds, n_pitches
        single = {toks[0]: i for i, toks in enumerate(expand) if len(toks) == 1}
        self.pad_id, self.bos_id, self.eos_id = (single[f"{s}_None"] for s in _SPECIALS)

    @property
    def is_trained(self) -> bool:
        """Whether BPE has been learned."""
        return bool(self.miditok.is_trained)

    def preprocess(self, score: symusic.Score) -> symusic.Score:
        """The merged piano track on miditok's grid, notes in canonical order.

        This is exactly what :meth:`encode` tokenizes (and what a round trip keeps).
        """
        pre = self.miditok.preprocess_score(merge_piano(score))
        # Resampling puts notes from different ticks on one onset in file order;
        # re-sort them so the token order does not depend on it.
        pre.tracks = [_sorted_track(pre.tracks)] if len(pre.tracks) else []
        return pre

    def encode(self, score: symusic.Score) -> list[int]:
        seqs = self.miditok.encode(self.preprocess(score), no_preprocess_score=True)
        ids = [int(i) for seq in seqs for i in seq.ids]
        return [self.bos_id, *ids]

    def decode(self, ids: list[int] | np.ndarray, bpm: float | None = None) -> symusic.Score:
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        stop = np.flatnonzero(arr == self.eos_id)
        if len(stop):
            arr = arr[: stop[0]]
        arr = arr[(arr >= 0) & (arr < self._n_model)]
        tokens = [t for i in arr.tolist() for t in self._expand[i]]
        tokens = self._valid_tokens(tokens)
        decoded = self.miditok.decode([TokSequence(tokens=tokens)]) if tokens else None
        return self._wrap(decoded, bpm)

    def _valid_tokens(self, tokens: list[str]) -> list[str]:
        """Drop specials and every token whose type may not follow the last kept one.

        The same idea as the original's ``to_valid_idxenc``: miditok's own grammar
        (its token-type graph) decides what may follow what.
        """
        graph = self.miditok.tokens_types_graph
        out: list[str] = []
        prev: str | None = None
        for tok in tokens:
            kind = tok.split("_")[0]
            if kind in _SPECIALS:
                continue
            if prev is None or kind in graph.get(prev, ()):
                out.append(tok)
                prev = kind
        return out

    @staticmethod
    def _wrap(decoded: symusic.Score | None, bpm: float | None) -> symusic.Score:
        """A one-track piano Score at :data:`OUTPUT_TPQ` with a tempo, whatever miditok made."""
        out = symusic.Score(OUTPUT_TPQ)
        track = symusic.Track("Piano", program=0, is_drum=False)
        if decoded is not None:
            merged = merge_piano(decoded)
            # Ticks are int32 in symusic: drop what hours of decoded garbage would push
            # past that at OUTPUT_TPQ (resample would raise OverflowError).
            limit = (2**31 - 1) // OUTPUT_TPQ * decoded.tpq
            notes = merged.tracks[0].notes.numpy()
            keep = notes["time"].astype(np.int64) + notes["duration"] < limit
            if not keep.all():
                kept = {k: v[keep] for k, v in notes.items()}
                merged.tracks[0].notes = symusic.Note.from_numpy(**kept)
            merged.tempos = [t for t in merged.tempos if t.time < limit]
            src = merged.resample(OUTPUT_TPQ, min_dur=1)
            track.notes = src.tracks[0].notes
            out.tempos = src.tempos.copy()
        if bpm is not None or len(out.tempos) == 0:
            out.tempos = [symusic.Tempo(0, float(bpm or DEFAULT_BPM))]
        out.time_signatures.append(symusic.TimeSignature(0, 4, 4))
        out.tracks.append(track)
        return out

    def count_notes(self, ids: list[int] | np.ndarray) -> int:
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        arr = arr[(arr >= 0) & (arr < self.vocab_size)]
        return int(self._n_pitches[arr].sum())

    def token_str(self, token_id: int) -> str:
        if 0 <= token_id < self._n_model:
            return "+".join(self._expand[token_id])
        return f"Unused_{token_id}"

    def train_bpe(
        self, files: Sequence[str | os.PathLike[str]], vocab_size: int | None = None
    ) -> None:
        """Learn BPE merges on ``files`` (the training split) up to ``vocab_size`` ids."""
        vocab_size = vocab_size or self.bpe_vocab_size
        base = len(self.miditok.vocab)
        if vocab_size is None or not base < vocab_size <= _MAX_CACHE_VOCAB:
            raise BadParameterError(
                f"--bpe-vocab: {vocab_size} must be above the base vocabulary ({base}) "
                f"and at most {_MAX_CACHE_VOCAB}"
            )
        if not files:
            raise BadParameterError("--bpe-vocab: no training files to learn BPE on")
        self.miditok.train(vocab_size, model="BPE", iterator=_BpeCorpus(self, files))
        self.bpe_vocab_size = vocab_size
        self._build_tables()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "version": 1,
            "vocab_size": self.vocab_size,
            "bpe_vocab_size": self.bpe_vocab_size,
            "miditok": self.miditok.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MidiTokTokenizer:
        """Rebuild a tokenizer (BPE merges included) from :meth:`to_dict`'s output."""
        name = data.get("type")
        state = data.get("miditok")
        if name not in _CLASSES or not isinstance(state, dict):
            raise TunesmithError(f"tokenizer config: not a remi/tsd tokenizer (type {name!r})")
        # miditok only rebuilds a tokenizer (with its BPE model) from a JSON file.
        with tempfile.TemporaryDirectory(prefix="tunesmith-tok-") as tmp:
            path = Path(tmp) / "tokenizer.json"
            path.write_text(json.dumps(state))
            mt = _CLASSES[name](params=path)
        tok = cls(name, data.get("bpe_vocab_size"), _miditok=mt)
        if data.get("vocab_size") not in (None, tok.vocab_size):
            raise TunesmithError(
                f"tokenizer config: vocabulary size {data['vocab_size']} does not match "
                f"the rebuilt tokenizer's {tok.vocab_size} (another miditok version?)"
            )
        return tok
