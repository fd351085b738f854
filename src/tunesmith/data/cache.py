"""The on-disk layout of a token cache, shared by :mod:`prepare` (writer) and :mod:`dataset` (reader).

A cache is a folder::

    meta.json          {"format": "tunesmith-token-cache", "version": 1, "tokenizer": ...,
                        "vocab_size": ..., "dtype": "uint16", "source": ..., "fractions": ...,
                        "counts": {...}, "tokens": {...}, "eos_appended": false, ...}
    tokenizer.json     the tokenizer (BPE merges included), as saved beside checkpoints
    manifest.jsonl     one line per MIDI file found: file, split, tokens, status, reason
    train.bin          the split's token ids, uint16 little-endian, files concatenated
    train.idx.npy      int64 (n_files, 2): each file's [start, end) in train.bin,
                       rows in the order of that split's ok files in manifest.jsonl
    val.bin, val.idx.npy, test.bin, test.idx.npy

Each file's ids are exactly ``tokenizer.encode(score)`` (they start with the
tokenizer's prefix); no EOS is stored, the dataset appends it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import TunesmithError
from tunesmith.tokenization.base import Tokenizer

CACHE_FORMAT = "tunesmith-token-cache"
CACHE_VERSION = 1
TOKEN_DTYPE = "<u2"  # uint16, little-endian on every machine
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.jsonl"
TOKENIZER_FILE = "tokenizer.json"


def bin_file(split: str) -> str:
    return f"{split}.bin"


def idx_file(split: str) -> str:
    return f"{split}.idx.npy"


def read_meta(path: str | Path) -> dict[str, Any]:
    """The cache's ``meta.json``, or a one-line TunesmithError if ``path`` is not a cache."""
    path = Path(path)
    hint = f"make one with: tunesmith prepare DATA_DIR --out {path}"
    if not path.is_dir():
        raise TunesmithError(f"{path}: no such token cache folder ({hint})")
    try:
        meta = json.loads((path / META_FILE).read_text())
    except FileNotFoundError:
        raise TunesmithError(
            f"{path}: not a tunesmith token cache (no {META_FILE}; {hint})"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise TunesmithError(f"{path}: unreadable {META_FILE} ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise TunesmithError(
            f"{path}: not a tunesmith token cache ({META_FILE} has another format)"
        )
    if meta.get("version") != CACHE_VERSION:
        raise TunesmithError(
            f"{path}: token cache version {meta.get('version')} is not supported "
            f"(expected {CACHE_VERSION}); prepare it again"
        )
    return meta


def is_cache_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a tunesmith token cache (so ``prepare`` may replace it)."""
    try:
        read_meta(path)
    except TunesmithError:
        return False
    return True


def write_cache(
    out_dir: Path,
    tok: Tokenizer,
    per_split: dict[str, list[np.ndarray]],
    manifest: list[dict[str, Any]],
    meta: dict[str, Any],
) -> None:
    """Write a cache atomically: build it in a temporary sibling folder, then swap it in.

    ``out_dir`` must be absent, empty, or a previous cache (the caller checks);
    a previous cache is replaced only once the new one is complete. On failure
    nothing is left behind, not even parent folders this call created.
    """
    created = [p for p in [out_dir.parent, *out_dir.parent.parents] if not p.exists()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the cache is an ordinary folder
    try:
        for split, arrays in per_split.items():
            lengths = np.array([len(a) for a in arrays], dtype=np.int64)
            ends = np.cumsum(lengths)
            np.save(tmp / idx_file(split), np.stack([ends - lengths, ends], axis=1).reshape(-1, 2))
            data = np.concatenate(arrays) if arrays else np.zeros(0)
            data.astype(TOKEN_DTYPE).tofile(tmp / bin_file(split))
        with open(tmp / MANIFEST_FILE, "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in manifest)
        tok.save(tmp / TOKENIZER_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "cache")
            try:
                os.replace(tmp, out_dir)
            except OSError:
                os.replace(old / "cache", out_dir)  # put the previous cache back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:  # clean up, whatever stopped us (even Ctrl-C), then re-raise
        shutil.rmtree(tmp, ignore_errors=True)
        for path in created:  # deepest first: only the folders this call made
            if path.exists() and not any(path.iterdir()):
                path.rmdir()
        raise
