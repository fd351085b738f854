"""``tunesmith`` entry point: one sub-command module each, errors as one line + exit 2.

Each sub-command module exposes ``add_parser(subparsers)`` (its docstring becomes
``--help``) and ``run(args) -> int``. Modules are imported lazily so that
``tunesmith --help`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from tunesmith.errors import TunesmithError

# Sub-commands, each a module of the same name under tunesmith.cli.
COMMANDS = ("prepare", "train", "generate", "infill", "evaluate", "app", "plot")


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line message for usage errors."""

    commands: dict[str, argparse.ArgumentParser] = {}  # by name; build_parser sets its own

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args: list[str] | None = None, namespace: object = None) -> Any:  # type: ignore[override]
        """As argparse's, but an unknown argument is reported by its sub-command's parser
        (``tunesmith generate: error: ...``), not by the top-level one."""
        parsed, extra = self.parse_known_args(args, namespace)  # type: ignore[arg-type]
        if extra:
            owner = self.commands.get(getattr(parsed, "command", None) or "", self)
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    from tunesmith import __version__

    parser = _Parser(prog="tunesmith", description="Compose piano music with a Transformer.")
    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        importlib.import_module(f"tunesmith.cli.{module}").add_parser(sub)
    parser.commands = dict(sub.choices)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TunesmithError as err:
        print(f"tunesmith {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tunesmith {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
