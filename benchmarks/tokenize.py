"""Tokenization speed: tunesmith's ``seed`` tokenizer against miditok's TSD, same files, same run.

Both sides include loading and parsing each file from disk (tunesmith through its
guarded ``load_midi``, miditok through ``symusic.Score``), and both run in this one
process, one file after another. Usage::

    python benchmarks/tokenize.py [DATA_DIR] [--limit N]

DATA_DIR defaults to ``../shared/datasets/pop909`` next to the repository. Exits
with status 1 when tunesmith is slower than miditok (ratio < 1.0).
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's `tokenize`, which numpy imports
# (via inspect/linecache): drop the script's own folder from the import path so
# that `import tokenize` finds the real one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import miditok  # noqa: E402
import symusic  # noqa: E402

from tunesmith.data.prepare import find_midi_files  # noqa: E402
from tunesmith.tokenization.midi_io import load_midi  # noqa: E402
from tunesmith.tokenization.miditok_adapter import default_config  # noqa: E402
from tunesmith.tokenization.pairs import PairTokenizer  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "pop909"


def files_per_second(files: list[Path], tokenize: Callable[[Path], int]) -> tuple[float, int]:
    """Run ``tokenize`` over ``files`` once; return (files/s, total tokens)."""
    tokenize(files[0])  # warm-up: first-call allocations and lazy imports
    start = time.perf_counter()
    n_tokens = sum(tokenize(f) for f in files)
    return len(files) / (time.perf_counter() - start), n_tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"benchmark: {args.data_dir}: no such folder", file=sys.stderr)
        return 2
    files = [args.data_dir / rel for rel in find_midi_files(args.data_dir)][: args.limit]
    if not files:
        print(f"benchmark: {args.data_dir}: no MIDI files", file=sys.stderr)
        return 2

    seed = PairTokenizer()
    # miditok TSD with the settings tunesmith's own `tsd` uses (velocities, tempos, piano range).
    tsd = miditok.TSD(default_config())

    def run_seed(path: Path) -> int:
        return len(seed.encode(load_midi(path)))

    def run_tsd(path: Path) -> int:
        return sum(len(seq) for seq in tsd.encode(symusic.Score(path)))

    seed_fps, seed_tokens = files_per_second(files, run_seed)
    tsd_fps, tsd_tokens = files_per_second(files, run_tsd)
    ratio = seed_fps / tsd_fps
    print(f"{len(files)} files from {args.data_dir}")
    print(f"tunesmith seed : {seed_fps:8.1f} files/s  ({seed_tokens} tokens)")
    print(f"miditok TSD    : {tsd_fps:8.1f} files/s  ({tsd_tokens} tokens)")
    print(f"ratio (tunesmith / miditok): {ratio:.2f}  {'OK' if ratio >= 1.0 else 'SLOWER'}")
    return 0 if ratio >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
