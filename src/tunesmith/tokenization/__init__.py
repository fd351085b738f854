"""Tokenizers: MIDI scores <-> token ids, and the guarded MIDI I/O they stand on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.pairs import PairTokenizer

TOKENIZER_NAMES = ("pairs", "remi", "tsd")
FORMER_NAMES = {"seed": "pairs"}  # the pairs tokenizer was called "seed" before 0.2

__all__ = [
    "TOKENIZER_NAMES",
    "PairTokenizer",
    "TokenKind",
    "Tokenizer",
    "build_tokenizer",
    "canonical_name",
    "load_tokenizer",
]


def canonical_name(name: str) -> str:
    """A tokenizer's current name, given it or a former one (``seed`` -> ``pairs``)."""
    return FORMER_NAMES.get(name, name)


def build_tokenizer(name: str = "pairs", **kwargs: Any) -> Tokenizer:
    """A fresh tokenizer by name: ``pairs`` (default; formerly ``seed``), ``remi`` or ``tsd``."""
    name = canonical_name(name)
    if name == "pairs":
        return PairTokenizer()
    if name in ("remi", "tsd"):
        from tunesmith.tokenization.miditok_adapter import MidiTokTokenizer

        return MidiTokTokenizer(name, **kwargs)
    raise TunesmithError(
        f"--tokenizer: unknown tokenizer {name!r} (choose from {', '.join(TOKENIZER_NAMES)})"
    )


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its ``to_dict`` (a ``tokenizer.json`` or a checkpoint's config)."""
    kind = canonical_name(str(data.get("type")))
    if kind == "pairs":
        version, infill = data.get("version", 1), bool(data.get("infill", False))
        if version not in (1, 2) or infill != (version == 2):
            raise TunesmithError(
                f"pairs tokenizer config: unknown version {version!r} (infill {infill}); "
                "a newer tunesmith wrote it"
            )
        return PairTokenizer(infill=infill)
    if kind in ("remi", "tsd"):
        from tunesmith.tokenization.miditok_adapter import MidiTokTokenizer

        return MidiTokTokenizer.from_dict(data)
    raise TunesmithError(f"unknown tokenizer type {kind!r} in tokenizer config")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer from its JSON file (as saved beside every checkpoint)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TunesmithError(f"{path}: cannot read tokenizer ({err})") from None
    return tokenizer_from_dict(data)
