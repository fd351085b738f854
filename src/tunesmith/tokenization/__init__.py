"""Tokenizers: MIDI scores <-> token ids, and the guarded MIDI I/O they stand on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.seed import SeedTokenizer

TOKENIZER_NAMES = ("seed", "remi", "tsd")

__all__ = [
    "TOKENIZER_NAMES",
    "SeedTokenizer",
    "TokenKind",
    "Tokenizer",
    "build_tokenizer",
    "load_tokenizer",
]


def build_tokenizer(name: str = "seed", **kwargs: Any) -> Tokenizer:
    """A fresh tokenizer by name: ``seed`` (default), ``remi`` or ``tsd``."""
    if name == "seed":
        return SeedTokenizer()
    if name in ("remi", "tsd"):
        from tunesmith.tokenization.miditok_adapter import MidiTokTokenizer

        return MidiTokTokenizer(name, **kwargs)
    raise TunesmithError(
        f"--tokenizer: unknown tokenizer {name!r} (choose from {', '.join(TOKENIZER_NAMES)})"
    )


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its ``to_dict`` (a ``tokenizer.json`` or a checkpoint's config)."""
    kind = data.get("type")
    if kind == "seed":
        version, infill = data.get("version", 1), bool(data.get("infill", False))
        if version not in (1, 2) or infill != (version == 2):
            raise TunesmithError(
                f"seed tokenizer config: unknown version {version!r} (infill {infill}); "
                "a newer tunesmith wrote it"
            )
        return SeedTokenizer(infill=infill)
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
