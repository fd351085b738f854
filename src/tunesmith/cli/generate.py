"""``tunesmith generate``: compose a piece (from nothing or a prompt) and save it as MIDI."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError

HELP = """Generate music with the bundled model (or --model) and save it as MIDI.

Beside OUT.mid it writes OUT.json with every parameter, the seed and checksums
of the model and the prompt; `tunesmith generate --replay OUT.json` makes the
same piece again, byte for byte."""

# CLI flag -> GenerationConfig field (everything that shapes the music)
PARAMS = (
    "search", "notes", "bars", "top_k_notes", "top_k_durations", "top_k_offset", "temperature",
    "top_p", "beam_width", "length_penalty", "creativity", "scale", "pitch_range", "max_polyphony",
    "max_repeat", "seed", "bpm",
)  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="compose a piece and save it as MIDI", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--prompt", help="a MIDI file to continue (default: start from nothing)")
    p.add_argument("--prompt-notes", type=int, help="use only the prompt's first N notes")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--notes", type=int, help="new notes to generate (default 64)")
    length.add_argument("--bars", type=int, help="bars of 4/4 to generate instead of a note count")
    p.add_argument(
        "--search",
        choices=("greedy", "top_k", "top_p", "beam"),
        help="decoding method (default top_k)",
    )
    p.add_argument("--top-k-notes", type=int, help="top-k: candidates for a pitch (default 8)")
    p.add_argument(
        "--top-k-durations", type=int, help="top-k: candidates for a duration (default 4)"
    )
    p.add_argument(
        "--top-k-offset",
        type=int,
        help="top-k: drop the N most likely candidates first (default 0)",
    )
    p.add_argument(
        "--temperature", type=float, help="top-k/top-p: <1 safer, >1 wilder (default 1.0)"
    )
    p.add_argument("--top-p", type=float, help="top-p: nucleus mass (default 0.9)")
    p.add_argument("--beam-width", type=int, help="beam: number of beams (default 4)")
    p.add_argument("--length-penalty", type=float, help="beam: score / length**penalty (default 0)")
    p.add_argument(
        "--creativity",
        type=int,
        help="0-1000: scales a rest's probability by 1 - C/1000 (default 0)",
    )
    p.add_argument("--scale", help="keep to a scale, e.g. C:major, A:minor, D:dorian")
    p.add_argument("--pitch-range", help="keep pitches within LO-HI, e.g. 48-84")
    p.add_argument("--max-polyphony", type=int, help="at most N notes sounding at once")
    p.add_argument(
        "--max-repeat", type=int, help="at most N notes in a row of one pitch (default 8)"
    )
    p.add_argument(
        "--bpm", type=float, help="tempo of the output (default: the prompt's, else 120)"
    )
    p.add_argument(
        "--seed", type=int, help="random seed; the same seed gives the same music (default 0)"
    )
    p.add_argument("--out", help="output MIDI path (required unless --replay)")
    p.add_argument("--replay", help="a JSON sidecar written by generate: make that piece again")
    p.set_defaults(func=run)


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _load_replay(path: str) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TunesmithError(f"--replay {path}: no such file") from None
    except (OSError, json.JSONDecodeError) as err:
        raise TunesmithError(f"--replay {path}: not a generate JSON sidecar ({err})") from None
    if not isinstance(record, dict) or record.get("tool") != "tunesmith generate":
        raise TunesmithError(f"--replay {path}: not a generate JSON sidecar")
    return record


def run(args: argparse.Namespace) -> int:
    from tunesmith.evaluation.memorisation import copy_of_training_data
    from tunesmith.generation import GenerationConfig, Generator
    from tunesmith.tokenization.midi_io import load_midi, save_midi

    params = {k: getattr(args, k) for k in PARAMS if getattr(args, k) is not None}
    model, prompt_path, prompt_notes = args.model, args.prompt, args.prompt_notes
    if args.replay:
        record = _load_replay(args.replay)
        params = {**record["params"], **params}
        model = model or record.get("model_path")
        prompt_path = prompt_path or record.get("prompt_path")
        prompt_notes = prompt_notes if prompt_notes is not None else record.get("prompt_notes")
        if (
            prompt_path
            and record.get("prompt_sha256")
            and sha256_file(prompt_path) != record["prompt_sha256"]
        ):
            raise TunesmithError(
                f"--replay: the prompt {prompt_path} changed since the piece was made"
            )
    if not args.out:
        raise TunesmithError("--out: give the output MIDI path (e.g. --out song.mid)")
    out = Path(args.out)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise TunesmithError(f"--out {out}: the output must end in .mid or .midi")
    if not out.parent.exists():
        raise TunesmithError(f"--out {out}: folder {out.parent} does not exist")
    config = GenerationConfig(**params)  # validates every parameter before the model loads
    prompt = load_midi(prompt_path) if prompt_path else None
    started = time.perf_counter()
    generator = Generator.from_pretrained(model)
    load_seconds = time.perf_counter() - started
    if args.replay and record.get("model_sha256") and generator.checksum != record["model_sha256"]:
        raise TunesmithError("--replay: the model differs from the one that made the piece")

    bar = _progress_bar(config)
    result = generator.generate(
        prompt, prompt_notes=prompt_notes, config=config, callback=bar.update_to
    )
    bar.close()
    for warning in result.warnings:
        print(f"tunesmith generate: warning: {warning}", file=sys.stderr)
    save_midi(result.score, out)
    copy = copy_of_training_data(generator.checkpoint, result.grid, result.n_prompt_notes)
    if copy is not None:
        result.memorisation = copy.to_dict()
    sidecar = out.with_suffix(".json")
    record = {
        "tool": "tunesmith generate",
        "params": config.to_dict(),
        "model_path": str(generator.checkpoint) if model else None,
        "model_sha256": generator.checksum,
        "prompt_path": str(Path(prompt_path).resolve()) if prompt_path else None,
        "prompt_sha256": sha256_file(prompt_path) if prompt_path else None,
        "prompt_notes": prompt_notes,
        "prompt_tokens": result.prompt_length,
        "new_tokens": len(result.new_ids),
        "prompt_notes_used": result.n_prompt_notes,
        "new_notes": result.n_new_notes,
        "stop_reason": result.stop_reason,
        "bpm": result.bpm,
        "generation_seconds": round(result.seconds, 4),
        "model_load_seconds": round(load_seconds, 4),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "midi_sha256": sha256_file(out),
    }
    if result.memorisation is not None:
        record["memorisation"] = result.memorisation
    sidecar.write_text(json.dumps(record, indent=2))
    seconds = result.score.to("second").end() if len(result.grid) else 0.0
    print(
        f"wrote {out}: {result.n_new_notes} new notes"
        + (f" after {result.n_prompt_notes} prompt notes" if result.n_prompt_notes else "")
        + f", {seconds:.1f} s at {result.bpm:.0f} bpm, {result.tokens_per_second:.0f} tokens/s"
        + f" ({result.stop_reason}); parameters in {sidecar}"
    )
    if copy is not None:
        print(copy.describe())
    return 0


class _Bar:
    """A tqdm bar on a terminal, silence elsewhere; ``update_to`` is the generator callback."""

    def __init__(self, total: int, unit: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit=unit, disable=not sys.stderr.isatty(), leave=False)

    def update_to(self, done: int, total: int) -> None:
        self._bar.n = min(done, total)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _progress_bar(config: Any) -> _Bar:
    return _Bar(config.notes or config.bars * 16, "notes" if config.bars is None else "steps")
