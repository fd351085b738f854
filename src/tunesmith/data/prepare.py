"""``prepare``: a folder of MIDI files -> a token cache (layout in :mod:`tunesmith.data.cache`).

Bad files are never fatal and never silent: each is listed in the manifest with
its reason and in the summary. Nothing is written until every file has been
tokenized; the cache is then built in a temporary folder beside ``out_dir`` and
renamed into place, so a failure leaves neither a partial cache nor a damaged
previous one.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tunesmith.data import cache
from tunesmith.data.split import DEFAULT_FRACTIONS, SPLITS, assign_splits, check_fractions
from tunesmith.errors import BadMidiError, BadParameterError, TunesmithError
from tunesmith.tokenization import (
    TOKENIZER_NAMES,
    build_tokenizer,
    canonical_name,
    tokenizer_from_dict,
)
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import MAX_FILE_BYTES, PIANO_HIGH, PIANO_LOW, load_midi

MIDI_SUFFIXES = (".mid", ".midi")
_CHUNK = 16  # files per worker task: small enough for a lively progress bar


@dataclass
class FileResult:
    """The outcome for one file; ``tokens`` is set only when ``status == "ok"``."""

    file: str
    status: str  # "ok" | "rejected"
    reason: str = ""
    tokens: np.ndarray | None = None
    split: str | None = None


@dataclass
class PrepareSummary:
    """What :func:`prepare` did; :meth:`line` is the one-line summary the CLI prints."""

    out_dir: Path
    tokenizer: str
    vocab_size: int
    n_files: int
    n_ok: int
    rejected: list[tuple[str, str]]  # (file, reason)
    files_per_split: dict[str, int]
    tokens_per_split: dict[str, int]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self, max_listed: int = 5) -> str:
        """E.g. ``92 files: 91 ok, 1 rejected: no notes (x.mid)``."""
        text = f"{self.n_files} files: {self.n_ok} ok, {len(self.rejected)} rejected"
        if not self.rejected:
            return text
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.rejected[:max_listed]:
            by_reason.setdefault(reason, []).append(name)
        listed = "; ".join(f"{reason} ({', '.join(names)})" for reason, names in by_reason.items())
        more = len(self.rejected) - max_listed
        tail = f"; and {more} more (see {cache.MANIFEST_FILE})" if more > 0 else ""
        return f"{text}: {listed}{tail}"


def find_midi_files(data_dir: str | Path) -> list[str]:
    """Relative POSIX paths of every .mid/.midi file under ``data_dir`` (any case), sorted.

    Symlinked folders are not followed, so a link loop cannot hang the walk; one
    named like a MIDI file is listed, so that it is rejected with its reason
    rather than skipped in silence. Special files (FIFOs, devices) are listed too:
    :func:`load_midi` refuses them without opening them.
    """
    root = Path(data_dir)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        linked = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in filenames + linked:
            if name.lower().endswith(MIDI_SUFFIXES):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


def _reason(err: BadMidiError, name: str) -> str:
    """The error's reason without the ``name:`` prefix that load_midi puts first."""
    text = str(err)
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


def tokenize_file(
    tok: Tokenizer, root: str | Path, rel: str, max_file_bytes: int = MAX_FILE_BYTES
) -> FileResult:
    """Load and tokenize one file, turning every problem with its content into a reason."""
    try:
        score = load_midi(Path(root) / rel, name=rel, max_bytes=max_file_bytes)
    except BadMidiError as err:
        return FileResult(rel, "rejected", _reason(err, rel))
    if not any(len(t.notes) for t in score.tracks):
        return FileResult(rel, "rejected", "no notes")
    if all(t.is_drum for t in score.tracks if len(t.notes)):
        return FileResult(rel, "rejected", "drums only")
    try:
        ids = tok.encode(score)
    except (ValueError, IndexError, KeyError, RuntimeError) as err:
        # miditok/symusic failing on odd content: reported, never fatal.
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return FileResult(rel, "rejected", f"cannot tokenize ({type(err).__name__}: {first})")
    if tok.count_notes(ids) == 0:
        return FileResult(rel, "rejected", f"no notes in the piano range {PIANO_LOW}-{PIANO_HIGH}")
    return FileResult(rel, "ok", tokens=np.asarray(ids, dtype=cache.TOKEN_DTYPE))


def _tokenize_chunk(task: tuple[dict[str, Any], str, list[str], int]) -> list[FileResult]:
    # Runs in a worker: rebuilding the tokenizer per chunk keeps workers free of
    # module-level state and costs little next to parsing 16 files.
    tok_dict, root, rels, max_file_bytes = task
    tok = tokenizer_from_dict(tok_dict)
    return [tokenize_file(tok, root, rel, max_file_bytes) for rel in rels]


def tokenize_files(
    tok: Tokenizer,
    root: str | Path,
    rels: Sequence[str],
    workers: int = 1,
    progress: bool = True,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> list[FileResult]:
    """Tokenize ``rels`` (paths under ``root``), in ``workers`` processes; results in input order."""
    chunks = [list(rels[i : i + _CHUNK]) for i in range(0, len(rels), _CHUNK)]
    bar = tqdm(total=len(rels), unit="file", desc=f"tokenize ({tok.name})", disable=not progress)
    results: list[FileResult] = []

    def collect(parts: Iterator[list[FileResult]]) -> None:
        for part in parts:
            results.extend(part)
            bar.update(len(part))

    with bar:
        if workers <= 1 or len(chunks) <= 1:
            collect(iter([tokenize_file(tok, root, rel, max_file_bytes)] for rel in rels))
        else:
            tasks = [(tok.to_dict(), str(root), chunk, max_file_bytes) for chunk in chunks]
            with multiprocessing.Pool(min(workers, len(chunks))) as pool:
                collect(pool.imap_unordered(_tokenize_chunk, tasks))
    order = {rel: i for i, rel in enumerate(rels)}
    return sorted(results, key=lambda r: order[r.file])


def check_out_dir(out_dir: Path, data_dir: Path) -> None:
    """Refuse an ``out_dir`` that is a file, or a non-empty folder that is not a cache."""
    if out_dir.resolve() == data_dir.resolve():
        raise TunesmithError(f"{out_dir}: --out must not be the data folder itself")
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise TunesmithError(f"{out_dir}: --out exists and is not a folder")
        if any(out_dir.iterdir()) and not cache.is_cache_dir(out_dir):
            raise TunesmithError(
                f"{out_dir}: --out is a non-empty folder that is not a tunesmith token cache; "
                "refusing to overwrite it"
            )


def _check_arguments(
    data_dir: Path,
    out_dir: Path,
    tokenizer: str,
    workers: int | None,
    bpe_vocab_size: int | None,
    max_file_bytes: int,
) -> None:
    """Refuse bad parameters and folders, in one line each, before any work."""
    if canonical_name(tokenizer) not in TOKENIZER_NAMES:
        raise BadParameterError(
            f"--tokenizer: unknown tokenizer {tokenizer!r} (choose from {', '.join(TOKENIZER_NAMES)})"
        )
    if bpe_vocab_size is not None and canonical_name(tokenizer) == "pairs":
        raise BadParameterError("--bpe-vocab: BPE is only available with --tokenizer remi or tsd")
    if workers is not None and workers < 1:
        raise BadParameterError(f"--workers: {workers} must be at least 1")
    if max_file_bytes < 1:
        raise BadParameterError(
            f"--max-file-mb: the size limit must be positive ({max_file_bytes} bytes)"
        )
    if not data_dir.exists():
        raise TunesmithError(f"{data_dir}: no such folder")
    if not data_dir.is_dir():
        raise TunesmithError(f"{data_dir}: is a file; prepare needs a folder of MIDI files")
    check_out_dir(out_dir, data_dir)


def _tokenize_and_split(
    tok: Tokenizer,
    data_dir: Path,
    rels: list[str],
    fractions: tuple[float, ...],
    bpe_vocab_size: int | None,
    tokenize: Any,
) -> list[FileResult]:
    """Every file's result; the usable ones get their split (and, with BPE, BPE ids).

    ``tokenize(tok, rels)`` runs :func:`tokenize_files` with the caller's workers.
    """
    results = tokenize(tok, rels)
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        first = results[0]
        raise TunesmithError(
            f"{data_dir}: none of the {len(rels)} MIDI files is usable ({first.file}: {first.reason})"
        )
    splits = assign_splits([r.file for r in ok], fractions)
    for r in ok:
        r.split = splits[r.file]
    if bpe_vocab_size is not None:
        train_files = [data_dir / r.file for r in ok if r.split == "train"]
        tok.train_bpe(train_files, bpe_vocab_size)  # type: ignore[attr-defined]
        # The second pass only re-encodes files the first pass accepted.
        again = tokenize(tok, [r.file for r in ok])
        for r, new in zip(ok, again, strict=True):
            r.tokens, r.status, r.reason = new.tokens, new.status, new.reason
            r.split = r.split if new.status == "ok" else None
    if tok.vocab_size > 65536:
        raise BadParameterError(f"tokenizer vocabulary {tok.vocab_size} does not fit uint16 ids")
    return results


def _summarise(out_dir: Path, tok: Tokenizer, results: list[FileResult]) -> PrepareSummary:
    ok = [r for r in results if r.status == "ok"]
    return PrepareSummary(
        out_dir=out_dir,
        tokenizer=tok.name,
        vocab_size=tok.vocab_size,
        n_files=len(results),
        n_ok=len(ok),
        rejected=[(r.file, r.reason) for r in results if r.status != "ok"],
        files_per_split={s: sum(r.split == s for r in ok) for s in SPLITS},
        tokens_per_split={
            s: sum(len(r.tokens) for r in ok if r.split == s and r.tokens is not None)
            for s in SPLITS
        },
        seconds=0.0,
    )


def _cache_meta(
    summary: PrepareSummary,
    data_dir: Path,
    bpe_vocab_size: int | None,
    fractions: tuple[float, ...],
) -> dict[str, Any]:
    """The cache's ``meta.json``."""
    return {
        "format": cache.CACHE_FORMAT,
        "version": cache.CACHE_VERSION,
        "tokenizer": summary.tokenizer,
        "vocab_size": summary.vocab_size,
        "bpe_vocab_size": bpe_vocab_size,
        "dtype": "uint16",
        "eos_appended": False,
        "source": str(data_dir.resolve()),
        "fractions": dict(zip(SPLITS, fractions, strict=True)),
        "counts": {
            "files": summary.n_files,
            "ok": summary.n_ok,
            "rejected": len(summary.rejected),
            **summary.files_per_split,
        },
        "tokens": summary.tokens_per_split,
    }


def _manifest(results: list[FileResult]) -> list[dict[str, Any]]:
    return [
        {
            "file": r.file,
            "split": r.split,
            "tokens": 0 if r.tokens is None else len(r.tokens),
            "status": r.status,
            "reason": r.reason,
        }
        for r in results
    ]


def prepare(
    data_dir: str | Path,
    out_dir: str | Path,
    tokenizer: str = "pairs",
    workers: int | None = None,
    progress: bool = True,
    bpe_vocab_size: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> PrepareSummary:
    """Tokenize every MIDI file under ``data_dir`` into a token cache at ``out_dir``.

    ``workers`` defaults to the number of CPUs; ``bpe_vocab_size`` (remi/tsd only)
    learns BPE on the training split first; files over ``max_file_bytes`` are
    rejected. Raises :class:`TunesmithError` (one line naming the path) for a
    missing or empty folder, a single file instead of a folder, a bad ``out_dir``,
    or when no file at all is usable.
    """
    start = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    fr = check_fractions(fractions)
    _check_arguments(data_dir, out_dir, tokenizer, workers, bpe_vocab_size, max_file_bytes)
    rels = find_midi_files(data_dir)
    if not rels:
        raise TunesmithError(f"{data_dir}: no .mid or .midi files in this folder or below it")
    n_workers = workers or os.cpu_count() or 1

    def tokenize(tok: Tokenizer, names: list[str]) -> list[FileResult]:
        return tokenize_files(tok, data_dir, names, n_workers, progress, max_file_bytes)

    tok = build_tokenizer(tokenizer)
    results = _tokenize_and_split(tok, data_dir, rels, fr, bpe_vocab_size, tokenize)
    ok = [r for r in results if r.status == "ok"]
    summary = _summarise(out_dir, tok, results)
    per_split = {s: [r.tokens for r in ok if r.split == s and r.tokens is not None] for s in SPLITS}
    meta = _cache_meta(summary, data_dir, bpe_vocab_size, fr)
    cache.write_cache(out_dir, tok, per_split, _manifest(results), meta)
    summary.seconds = time.perf_counter() - start
    return summary
