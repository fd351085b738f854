"""Draw a training run's loss and accuracy curves (train vs val) to a PNG.

Examples:
  tunesmith plot runs/mine                 # writes runs/mine/curves.png
  tunesmith plot runs/mine --out c.png --x tokens
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot a training run's curves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by tunesmith train")
    p.add_argument("--out", metavar="PNG", help="where to write (default RUN_DIR/curves.png)")
    p.add_argument("--x", choices=("step", "tokens"), default="step", help="horizontal axis")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunesmith.training.plot import plot_run

    path = plot_run(args.run_dir, args.out, x_axis=args.x)
    print(f"wrote {path}")
    return 0
