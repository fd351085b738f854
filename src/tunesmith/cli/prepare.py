"""``tunesmith prepare``: tokenize a folder of MIDI files into a token cache."""

from __future__ import annotations

import argparse
import inspect
import sys

from tunesmith.tokenization import TOKENIZER_NAMES, canonical_name
from tunesmith.tokenization.midi_io import MAX_FILE_BYTES


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Tokenize every .mid/.midi file under DATA_DIR (recursively) into a token cache.

    Files are split train/val/test (90/5/5) by a hash of their relative path. Bad
    files (corrupt, empty, no notes, drums only) are skipped and listed with their
    reason in CACHE_DIR/manifest.jsonl and in the summary. CACHE_DIR is written
    atomically; an existing cache there is replaced only once the new one is
    complete, and any other non-empty folder is refused.
    """
    parser = sub.add_parser(
        "prepare",
        help="tokenize a folder of MIDI files into a token cache",
        description=inspect.cleandoc(add_parser.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "data_dir", metavar="DATA_DIR", help="folder of MIDI files (searched recursively)"
    )
    parser.add_argument(
        "--out", metavar="CACHE_DIR", required=True, help="folder to write the cache to"
    )
    parser.add_argument(
        "--tokenizer",
        type=canonical_name,
        choices=TOKENIZER_NAMES,
        default="pairs",
        help="encoding (default: pairs; its former name seed is accepted)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes (default: number of CPUs)"
    )
    parser.add_argument(
        "--bpe-vocab",
        type=int,
        default=None,
        metavar="N",
        help="learn BPE up to N ids on the training split (remi/tsd only)",
    )
    parser.add_argument(
        "--max-file-mb",
        type=float,
        default=MAX_FILE_BYTES / 2**20,
        metavar="MB",
        help="reject files larger than this (default: %(default)g MB)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``prepare`` and print each rejected file, then the one-line summary."""
    from tunesmith.data.prepare import prepare

    summary = prepare(
        args.data_dir,
        args.out,
        tokenizer=args.tokenizer,
        workers=args.workers,
        progress=not args.no_progress,
        bpe_vocab_size=args.bpe_vocab,
        max_file_bytes=int(args.max_file_mb * 2**20),
    )
    for name, reason in summary.rejected:
        print(f"rejected {name}: {reason}", file=sys.stderr)
    print(summary.line())
    splits = ", ".join(f"{s} {summary.files_per_split[s]}" for s in summary.files_per_split)
    print(
        f"cache {summary.out_dir}: {summary.tokenizer} tokenizer, vocab {summary.vocab_size}, "
        f"{sum(summary.tokens_per_split.values())} tokens ({splits} files) in {summary.seconds:.1f} s"
    )
    return 0
