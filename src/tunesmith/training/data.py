"""The training data of a run: a token cache (prepared from a MIDI folder when needed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.data import cache as cache_layout
from tunesmith.data.dataset import TokenCache, WindowDataset
from tunesmith.errors import TunesmithError
from tunesmith.tokenization import Tokenizer
from tunesmith.training.config import TrainConfig
from tunesmith.training.distributed import DistInfo, any_rank, barrier

CACHE_SUBDIR = "cache"


@dataclass
class TrainingData:
    """Where the tokens are, what tokenizer made them, and a record for ``config.json``."""

    cache: TokenCache
    tokenizer: Tokenizer
    info: dict[str, Any]


def fingerprint(cache_dir: Path) -> str:
    """A short sha256 of the train and val tokens: resuming on other data is refused."""
    h = hashlib.sha256()
    for split in ("train", "val"):
        for name in (cache_layout.bin_file(split), cache_layout.idx_file(split)):
            path = cache_dir / name
            h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()[:16]


def _prepare_into(
    source: Path, cache_dir: Path, tokenizer: str, dist: DistInfo, progress: bool
) -> None:
    """Rank 0 tokenizes the folder; the others wait, then everyone reads the cache."""
    from tunesmith.data.prepare import prepare

    failed: TunesmithError | None = None
    if dist.is_main:
        try:
            summary = prepare(source, cache_dir, tokenizer=tokenizer, progress=progress)
            print(f"prepared {cache_dir}: {summary.line()}", flush=True)
        except TunesmithError as err:
            failed = err
    # Every rank must learn of a failure, or the others would wait forever.
    if any_rank(dist, failed is not None):
        raise failed or TunesmithError(f"{source}: preparing the token cache failed on rank 0")
    barrier(dist)


def open_data(
    source: Path,
    run_dir: Path,
    tokenizer_name: str,
    required: Tokenizer | None,
    dist: DistInfo,
    infill: bool = False,
    progress: bool = True,
) -> TrainingData:
    """Use ``source`` if it is a token cache, else prepare it into ``run_dir/cache``.

    ``progress`` shows the tokenize progress bar while preparing.

    ``required`` (the tokenizer of ``--init-from``) must equal the cache's tokenizer,
    as must ``tokenizer_name``, except for the fill-in specials: a cache never holds
    them, and the run's tokenizer has them when ``infill`` (FIM training, or a resumed
    run that had them) or ``required`` does. A checkpoint without them gets them.
    """
    if not source.exists():
        raise TunesmithError(f"{source}: no such data folder or token cache")
    if cache_layout.is_cache_dir(source):
        cache_dir = source
    elif source.is_dir():
        cache_dir = run_dir / CACHE_SUBDIR
        # A resumed run (or a retried start) reuses the cache it prepared before.
        if cache_layout.is_cache_dir(cache_dir):
            prepared_from = cache_layout.read_meta(cache_dir).get("source")
            if prepared_from != str(source.resolve()):
                raise TunesmithError(
                    f"{cache_dir}: was prepared from {prepared_from}, not {source.resolve()}; use a new --out"
                )
        else:
            _prepare_into(source, cache_dir, tokenizer_name, dist, progress)
    else:
        raise TunesmithError(
            f"{source}: is a file; train needs a folder of MIDI files or a token cache"
        )
    tokens = TokenCache(cache_dir)
    meta, tokenizer = tokens.meta, tokens.tokenizer
    if tokenizer.name != tokenizer_name:
        raise TunesmithError(
            f"{cache_dir}: the token cache was made with the {tokenizer.name!r} tokenizer, "
            f"not {tokenizer_name!r}; prepare it again with --tokenizer {tokenizer_name} or pass --tokenizer {tokenizer.name}"
        )
    tokenizer = run_tokenizer(cache_dir, tokenizer, required, infill)
    if not meta.get("tokens", {}).get("train"):
        raise TunesmithError(f"{cache_dir}: the training split holds no tokens")
    info = {
        "source": meta.get("source"),
        "cache": str(cache_dir),
        "tokenizer": tokenizer.name,
        "files": meta.get("counts"),
        "tokens": meta.get("tokens"),
        "fingerprint": fingerprint(cache_dir),
    }
    return TrainingData(cache=tokens, tokenizer=tokenizer, info=info)


def _has_infill(tokenizer: Tokenizer) -> bool:
    return tokenizer.without_infill().to_dict() != tokenizer.to_dict()


def run_tokenizer(
    cache_dir: Path, cached: Tokenizer, required: Tokenizer | None, infill: bool
) -> Tokenizer:
    """The run's tokenizer: the cache's, plus the fill-in ids if ``infill`` or ``required`` has them.

    ``required`` (the ``--init-from`` checkpoint's) may differ from the cache's in the
    fill-in ids alone (its embedding then grows by their rows); any other difference
    is refused.
    """
    if required is not None and (
        required.without_infill().to_dict() != cached.without_infill().to_dict()
    ):
        raise TunesmithError(
            f"{cache_dir}: the token cache's tokenizer ({cached.name}) differs from the --init-from "
            f"checkpoint's ({required.name}); prepare the data with the checkpoint's tokenizer"
        )
    if infill or _has_infill(cached) or (required is not None and _has_infill(required)):
        return cached.with_infill()
    return cached


def window_datasets(data: TrainingData, cfg: TrainConfig) -> tuple[WindowDataset, WindowDataset]:
    """The training windows (augmented and FIM as configured) and the validation windows (never)."""
    train = WindowDataset(
        data.cache,
        "train",
        cfg.seq_len,
        augment_transpose=cfg.augment_transpose,
        seed=cfg.seed,
        fim_rate=cfg.fim_rate,
        bar_positions=cfg.bar_positions,
    )
    val = WindowDataset(
        data.cache, "val", cfg.seq_len, seed=cfg.seed, bar_positions=cfg.bar_positions
    )
    return train, val
