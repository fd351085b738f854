"""``tunesmith generate``: compose a piece (from nothing or a prompt) and save it as MIDI."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.generation.config import GenerationConfig, knobs

if TYPE_CHECKING:
    from tunesmith.generation.generator import Generator
    from tunesmith.generation.result import GenerationResult

HELP = """Generate music with the bundled model (or --model) and save it as MIDI.

Beside OUT.mid it writes OUT.json with every parameter, the seed and checksums
of the model and the prompt; `tunesmith generate --replay OUT.json` makes the
same piece again, byte for byte."""

# Parameters of the run that are not GenerationConfig fields, for errors naming them.
OTHER_FLAGS = {
    "prompt_notes": "--prompt-notes", "prompt": "--prompt", "backend": "--backend",
    "threads": "--threads",
}  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``generate`` sub-command: run options, then one option per GenerationConfig field."""
    p = sub.add_parser("generate", help="compose a piece and save it as MIDI", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--prompt", help="a MIDI file to continue (default: start from nothing)")
    p.add_argument("--prompt-notes", type=int, help="use only the prompt's first N notes")
    add_knob_options(p)
    p.add_argument("--out", help="output MIDI path (required unless --replay)")
    p.add_argument("--replay", help="a JSON sidecar written by generate: make that piece again")
    add_decoding_options(p)
    p.set_defaults(func=run)


def add_decoding_options(parser: argparse.ArgumentParser, threads: bool = True) -> None:
    """``--backend`` and (unless ``threads`` is False: the web app, whose workers take one
    thread each) ``--threads``: how the model runs, shared by every command that generates;
    they change the speed, not the music."""
    from tunesmith.model.backend_names import BACKENDS, MAX_THREADS

    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="decoding step: onnx (ONNX Runtime, the `fast` extra), torch, or auto: onnx when "
        "installed and its export of the model is cached, else torch (a --replay takes the "
        "recorded one; default auto)",
    )  # fmt: skip
    if not threads:
        return
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help=f"CPU threads to decode with, 1 to {MAX_THREADS} (default: 2 when a second core "
        "is idle, else 1; the same seed gives the same piece with any number)",
    )  # fmt: skip


def threads_option(value: int | None) -> int:
    """The ``--threads`` given, or the default (:func:`~tunesmith.model.backend_names.decode_threads`)."""
    from tunesmith.model.backend_names import decode_threads

    try:
        return decode_threads(value)
    except BadParameterError as err:
        raise flag_error(err) from None


def add_knob_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """An option per :class:`GenerationConfig` field, from its knob (help, kind, choices).

    Every default is None (not given), so a ``--replay`` record's values are kept
    unless an option overrides them; the help shows the config's own default.
    Fields in ``skip`` get no option (their value stays None: not given).
    """
    defaults = GenerationConfig().to_dict()
    groups: dict[str, Any] = {}
    parser.set_defaults(**dict.fromkeys(skip))
    for name, k in knobs().items():
        if name in skip:
            continue
        target = parser
        if k.group is not None:
            if k.group not in groups:
                groups[k.group] = parser.add_mutually_exclusive_group()
            target = groups[k.group]
        notes = [f"default {defaults[name]}"] if defaults[name] is not None else []
        if k.kind in (int, float):
            notes.append(k.bounds_text())
        text = f"{k.help} ({'; '.join(notes)})" if notes else k.help
        if k.kind is bool:
            target.add_argument(
                k.flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            target.add_argument(k.flag, dest=name, type=k.kind, choices=k.choices, help=text)


def backend_option(value: str | None) -> str:
    """The ``--backend`` given (default auto), refused in one line when it cannot run here."""
    from tunesmith.model.backend_names import check_backend

    try:
        return check_backend(value or "auto")
    except BadParameterError as err:
        raise flag_error(err) from None


def flag_error(err: BadParameterError) -> BadParameterError:
    """``err`` with its field spelled as the command line's flag (``--top-k-offset``)."""
    flags = {**OTHER_FLAGS, **{name: k.flag for name, k in knobs().items()}}
    if err.field in flags:
        return BadParameterError(f"{flags[err.field]}: {err.reason}")
    return err


def run(args: argparse.Namespace) -> int:
    """Generate, write OUT.mid and OUT.json, print a summary; user errors name the flag."""
    try:
        return _run(args)
    except BadParameterError as err:
        raise flag_error(err) from None


@dataclass(frozen=True)
class Plan:
    """What to generate: from the options, completed by a ``--replay`` record."""

    config: GenerationConfig
    model: str | None
    prompt: str | None
    prompt_notes: int | None
    out: Path
    model_sha256: str | None = None
    infill_bars: tuple[int, int] | None = None  # from an infill record: the bars it regenerated
    backend: str = "auto"
    sampler: str | None = None  # a replayed record's (None: the backend's own)
    threads: int = 1


def make_plan(args: argparse.Namespace) -> Plan:
    """Options (and the replayed record under them), checked before the model loads."""
    from tunesmith.generation.record import load_record

    given = {n: getattr(args, n) for n in knobs() if getattr(args, n) is not None}
    if not args.replay:
        return Plan(GenerationConfig(**given), args.model, args.prompt, args.prompt_notes,
                    check_out(args.out), backend=backend_option(args.backend),
                    threads=threads_option(args.threads))  # fmt: skip
    try:
        replay = load_record(args.replay)
    except TunesmithError as err:
        raise TunesmithError(f"--replay {err}") from None
    command = getattr(args, "command", None) or "generate"
    made_by = "infill" if replay.infill_bars is not None else "generate"
    if made_by != command:
        raise TunesmithError(
            f"--replay {args.replay}: a record of tunesmith {made_by} "
            f"(replay it with tunesmith {made_by} --replay)"
        )
    prompt = _replay_prompt(args, replay, getattr(args, "prompt_flag", "--prompt"))
    notes = args.prompt_notes if args.prompt_notes is not None else replay.prompt_notes
    # The same seed gives the same bytes within one backend: replay on the recorded one.
    backend = backend_option(args.backend or replay.backend)
    return Plan(replay.config.with_params(**given), args.model or replay.model_path, prompt,
                notes, check_out(args.out), replay.model_sha256, replay.infill_bars,
                backend, replay.sampler, threads_option(args.threads))  # fmt: skip


def _replay_prompt(args: argparse.Namespace, replay: Any, flag: str) -> str | None:
    """The replayed piece's prompt (``flag`` overrides it), refused if gone, odd or changed."""
    from tunesmith.generation.record import sha256_file

    prompt = args.prompt or replay.prompt_path
    if not prompt and replay.prompt_sha256:  # the web UI's records name an upload, not a path
        raise TunesmithError(
            f"--replay {args.replay}: give the prompt {replay.prompt_name or ''} with {flag}"
        )
    if prompt and not Path(prompt).is_file():  # checked before hashing it
        if Path(prompt).exists():  # a FIFO, a device, a folder: never read
            raise TunesmithError(f"{prompt}: not a regular file (the prompt must be a MIDI file)")
        if args.prompt:
            raise TunesmithError(f"{flag} {prompt}: no such file")
        raise TunesmithError(
            f"--replay {args.replay}: the prompt {prompt} no longer exists (give it with {flag})"
        )
    if prompt and replay.prompt_sha256 and sha256_file(prompt) != replay.prompt_sha256:
        raise TunesmithError(f"--replay: the prompt {prompt} changed since the piece was made")
    return prompt


def check_out(out: str | None) -> Path:
    """The output path, refused before any work when it (or its sidecar) cannot be written."""
    if not out:
        raise TunesmithError("--out: give the output MIDI path (e.g. --out song.mid)")
    path = Path(out)
    if path.suffix.lower() not in (".mid", ".midi"):
        raise TunesmithError(f"--out {path}: the output must end in .mid or .midi")
    if not path.parent.is_dir():
        raise TunesmithError(f"--out {path}: folder {path.parent} does not exist")
    for target in (path, path.with_suffix(".json")):
        if target.is_dir():
            raise TunesmithError(f"--out {path}: {target} is a folder")
        if target.exists() and not target.is_file():
            raise TunesmithError(f"--out {path}: {target} is not a regular file")
    return path


def load_generator(plan: Plan) -> tuple[Generator, float]:
    """The plan's model and backend, and the seconds its loading took; a ``--replay`` record
    names the sampler that made its piece, and a model other than its own is refused."""
    from tunesmith.generation import Generator

    started = time.perf_counter()
    generator = Generator.from_pretrained(plan.model, num_threads=plan.threads,
                                          backend=plan.backend)  # fmt: skip
    generator.sampler = plan.sampler  # a record replays with the sampler that made it
    load_seconds = time.perf_counter() - started
    if plan.model_sha256 and generator.checksum != plan.model_sha256:
        raise TunesmithError("--replay: the model differs from the one that made the piece")
    return generator, load_seconds


def _run(args: argparse.Namespace) -> int:
    from tunesmith.tokenization.midi_io import load_midi

    plan = make_plan(args)
    prompt = load_midi(plan.prompt) if plan.prompt else None
    generator, load_seconds = load_generator(plan)
    bar = _Bar(plan.config)
    try:
        result = generator.generate(
            prompt,
            prompt_notes=plan.prompt_notes,
            config=plan.config,
            callback=bar.update_to,
            prompt_name=str(plan.prompt) if plan.prompt else None,
            # A --max-copy given by name is refused on a model without an index; the default is not.
            **({"max_copy": plan.config.max_copy} if args.max_copy is not None else {}),
        )
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"tunesmith generate: warning: {warning}", file=sys.stderr)
    copy = _copy_of_training_data(generator, result)
    sidecar = write_outputs(plan, generator, result, load_seconds)
    print(_summary(plan.out, result, sidecar))
    if copy is not None:
        print(copy.describe())
    return 0


def _copy_of_training_data(generator: Generator, result: GenerationResult) -> Any:
    from tunesmith.evaluation.memorisation import copy_of_training_data

    copy = copy_of_training_data(generator.checkpoint, result.grid, result.n_prompt_notes)
    if copy is not None:
        result.memorisation = copy.to_dict()
    return copy


def write_outputs(
    plan: Plan, generator: Generator, result: GenerationResult, load_seconds: float
) -> Path:
    """Write OUT.mid, then OUT.json; a failure removes the MIDI rather than orphan it."""
    from tunesmith.generation.record import make_record, sha256_file, step_record, write_record
    from tunesmith.tokenization.midi_io import save_midi

    out, sidecar = plan.out, plan.out.with_suffix(".json")
    prompt = None
    if plan.prompt:
        prompt = {"path": str(Path(plan.prompt).resolve()), "sha256": sha256_file(plan.prompt)}
    model = {"path": str(generator.checkpoint) if plan.model else None,
             "sha256": generator.checksum}  # fmt: skip
    try:
        save_midi(result.score, out)
        record = make_record(step_record(result, plan.prompt_notes), out.read_bytes(), model,
                             prompt)  # fmt: skip
        record["model_load_seconds"] = round(load_seconds, 4)
        if result.memorisation is not None:
            record["memorisation"] = result.memorisation
        write_record(record, sidecar)
    except OSError as err:
        out.unlink(missing_ok=True)
        raise TunesmithError(f"--out {out}: cannot write ({err.strerror or err})") from None
    return sidecar


def _summary(out: Path, result: GenerationResult, sidecar: Path) -> str:
    seconds = result.score.to("second").end() if len(result.grid) else 0.0
    after = f" after {result.n_prompt_notes} prompt notes" if result.n_prompt_notes else ""
    return (
        f"wrote {out}: {result.n_new_notes} new notes{after}, {seconds:.1f} s at "
        f"{result.bpm:.0f} bpm, {result.tokens_per_second:.0f} tokens/s "
        f"({result.stop_reason}); parameters in {sidecar}"
    )


class _Bar:
    """A tqdm bar on a terminal, silence elsewhere; ``update_to`` is the generator callback."""

    def __init__(self, config: GenerationConfig) -> None:
        from tqdm import tqdm

        from tunesmith.tokenization.midi_io import STEPS_PER_BAR

        total = config.notes or (config.bars or 0) * STEPS_PER_BAR
        unit = "notes" if config.bars is None else "steps"
        self._bar = tqdm(total=total, unit=unit, disable=not sys.stderr.isatty(), leave=False)

    def update_to(self, done: int, total: int) -> None:
        """Move the bar to ``done`` of ``total``."""
        self._bar.n = min(done, total)
        self._bar.refresh()

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()
