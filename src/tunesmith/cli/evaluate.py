"""Evaluate a model: held-out loss, the music it makes, and whether it copies its training data.

Loss, perplexity and token accuracy on the test and val splits of the data the
model was trained on (recorded in its config.json) or of --data (a MIDI folder
or a token cache; files it cannot use are listed with their reason). Then
pieces per setting (a search method, from nothing / from the openings of test
files / of training files); their musical statistics (structure and texture
included: repeated bars, bass, long notes) against excerpts of held-out real
music with as many notes (overlapping area per metric); for every piece the
longest run of notes that also occurs in a training file; and the quality bar
checked. Writes REPORT_DIR/report.json, report.md, PNG plots and the pieces as
MIDI. Time grows with --samples x --notes; greedy and beam make one piece per
distinct start, beam costs about its width in sampled pieces."""

from __future__ import annotations

import argparse
import sys

from tunesmith.cli.generate import add_decoding_options, backend_option, threads_option
from tunesmith.errors import TunesmithError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="loss, musical statistics and a memorisation check, as a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--data", help="MIDI folder or token cache (default: the model's training data)")
    p.add_argument(
        "--samples",
        type=int,
        default=4,
        help="pieces per search method from nothing and from test openings (default 4; greedy "
        "and beam make one piece per distinct start)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the first piece; the next ones count up (default 0)",
    )
    p.add_argument(
        "--notes",
        type=int,
        default=128,
        help="new notes per piece, and notes per real excerpt compared (default 128)",
    )
    p.add_argument(
        "--prompt-notes",
        type=int,
        default=32,
        help="notes of a file's opening used as prompt (default 32)",
    )
    p.add_argument(
        "--train-openings",
        type=int,
        default=4,
        help="pieces per search method prompted with training-file openings, for the copy "
        "check (default 4; 0: none)",
    )
    p.add_argument(
        "--searches",
        help="comma-separated search methods (default: greedy,top_k,top_p,beam)",
    )
    p.add_argument(
        "--excerpts-per-file",
        type=int,
        default=8,
        help="real excerpts cut from each held-out file at most (default 8)",
    )
    p.add_argument(
        "--out", required=True, metavar="REPORT_DIR", help="folder for the report (made if missing)"
    )
    add_decoding_options(p)
    p.set_defaults(func=run)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def run(args: argparse.Namespace) -> int:
    """Validate the options, evaluate, print the summary; 0 on success."""
    from tunesmith.evaluation.markdown import summary_table
    from tunesmith.evaluation.report import SEARCHES, EvalSettings, run_evaluation

    # Validate every number before the model loads, so a typo fails at once.
    settings = EvalSettings(
        samples=args.samples,
        seed=args.seed,
        notes=args.notes,
        prompt_notes=args.prompt_notes,
        searches=SEARCHES if args.searches is None else _names(args.searches),
        excerpts_per_file=args.excerpts_per_file,
        train_openings=args.train_openings,
        backend=backend_option(args.backend),
        threads=threads_option(args.threads),
    )
    if args.data is not None and not args.data.strip():
        raise TunesmithError("--data: empty path")
    report = run_evaluation(
        args.model,
        args.out,
        data=args.data,
        settings=settings,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(summary_table(report))
    print(f"report: {args.out}/report.md")
    return 0
