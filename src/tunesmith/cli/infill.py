"""``tunesmith infill``: regenerate a span of bars of a MIDI file, keep the rest, save it."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tunesmith.cli.generate import (
    Plan,
    _Bar,
    add_decoding_options,
    add_knob_options,
    flag_error,
    load_generator,
    make_plan,
    write_outputs,
)
from tunesmith.errors import BadParameterError, TunesmithError

if TYPE_CHECKING:
    from tunesmith.generation.generator import Generator
    from tunesmith.generation.result import GenerationResult

HELP = """Regenerate bars FIRST-LAST of a MIDI file and keep every other note; save it as MIDI.

  tunesmith infill song.mid --bars 5-8 --out new.mid
  tunesmith infill song.mid --bars 5-8 --search top_p --top-p 0.9 --seed 3 --out new.mid
  tunesmith infill --replay new.json --out again.mid

Bars count from 1, in 4/4 on the 16th-note grid. Every note outside the span is
kept (notes held into it are cut at its start); the new notes fill the span
exactly and lead into what follows. The model must have been trained for it
(tunesmith train --fim-rate 0.5). Every search and rule of generate applies; the
length options do not (the span is the length). Beside OUT.mid it writes
OUT.json, as generate does, with the span and the source file."""

# A fill is as long as its gap and ends it: no length knobs, no early end.
SKIPPED_KNOBS = ("notes", "bars", "stop_at_eos", "eos_after")
SPAN = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``infill`` sub-command: the piece, the span, then generate's knobs (length aside)."""
    p = sub.add_parser("infill", help="regenerate a span of bars and keep the rest",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("prompt", nargs="?", metavar="MIDI",
                   help="the piece whose bars to regenerate (required unless --replay)")  # fmt: skip
    p.add_argument("--bars", dest="span", metavar="FIRST-LAST",
                   help="the bars to regenerate, 1-based and inclusive: 5-8, or 5 for one bar "
                   "(required unless --replay)")  # fmt: skip
    p.add_argument("--model", help="checkpoint folder trained with --fim-rate (default: bundled)")
    add_knob_options(p, skip=SKIPPED_KNOBS)
    add_decoding_options(p)
    p.add_argument("--out", help="output MIDI path (required)")
    p.add_argument("--replay", help="a JSON sidecar written by infill: make that piece again")
    p.set_defaults(func=run, prompt_notes=None, prompt_flag="the MIDI argument")


def parse_span(text: str) -> tuple[int, int]:
    """``"5-8"`` as ``(5, 8)``, ``"5"`` as ``(5, 5)``; the piece checks the bars themselves."""
    match = SPAN.fullmatch(text)
    if not match:
        raise BadParameterError(f"--bars {text}: give FIRST-LAST, e.g. --bars 5-8")
    first = int(match[1])
    return first, int(match[2]) if match[2] is not None else first


def run(args: argparse.Namespace) -> int:
    """Infill, write OUT.mid and OUT.json, print a summary; user errors name the flag."""
    try:
        return _run(args)
    except BadParameterError as err:
        raise flag_error(err) from None


def _plan(args: argparse.Namespace) -> tuple[Plan, tuple[int, int]]:
    """The generate plan (options over a replayed record) and the span, checked early."""
    if not args.replay and not args.prompt:
        raise TunesmithError("give the MIDI file whose bars to regenerate (infill song.mid ...)")
    if not args.replay and not args.span:
        raise TunesmithError("--bars: give the bars to regenerate, e.g. --bars 5-8")
    plan = make_plan(args)
    bars = parse_span(args.span) if args.span else plan.infill_bars
    if bars is None:  # make_plan refuses any record but an infill's, which has its bars
        raise TunesmithError("--bars: give the bars to regenerate, e.g. --bars 5-8")
    return plan, bars


def _run(args: argparse.Namespace) -> int:
    from tunesmith.data.infill import check_bars
    from tunesmith.tokenization.midi_io import grid_notes, load_midi

    plan, bars = _plan(args)
    piece = load_midi(plan.prompt)
    check_bars(grid_notes(piece), bars)  # before the model loads
    generator, load_seconds = load_generator(plan)
    bar = _Bar(plan.config.with_params(bars=bars[1] - bars[0] + 1))
    try:
        result = generator.infill(piece, bars, config=plan.config, callback=bar.update_to,
                                  prompt_name=str(plan.prompt))  # fmt: skip
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"tunesmith infill: warning: {warning}", file=sys.stderr)
    copy = _copy_of_training_data(generator, result)
    sidecar = write_outputs(replace(plan, prompt_notes=None), generator, result, load_seconds)
    print(_summary(plan, bars, result, sidecar))
    if copy is not None:
        print(copy.describe())
    return 0


def _copy_of_training_data(generator: Generator, result: GenerationResult) -> Any:
    """The longest run the new notes (those in the span) copy from the training data."""
    from tunesmith.evaluation.memorisation import copy_of_training_data

    start, stop = result.span or (0, 0)
    new = result.grid[(result.grid[:, 0] >= start) & (result.grid[:, 0] < stop)]
    copy = copy_of_training_data(generator.checkpoint, new, 0)
    if copy is not None:
        result.memorisation = copy.to_dict()
    return copy


def _summary(plan: Plan, bars: tuple[int, int], result: GenerationResult, sidecar: Any) -> str:
    return (
        f"wrote {plan.out}: bars {bars[0]}-{bars[1]} of {plan.prompt} regenerated, "
        f"{result.n_new_notes} new notes, {result.n_prompt_notes} kept, "
        f"{result.tokens_per_second:.0f} tokens/s ({result.stop_reason}); parameters in {sidecar}"
    )
