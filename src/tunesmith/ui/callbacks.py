"""What the web UI's buttons do, as plain functions of plain values (no Gradio here).

Each action takes the user's :class:`Session` and returns a new one plus a
:class:`View` (what the page shows). Bad input raises :class:`TunesmithError` with
a one-line message; ``tunesmith.ui.app`` shows it and keeps the old session.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import symusic

from tunesmith.errors import BadMidiError, TunesmithError
from tunesmith.evaluation.memorisation import copy_of_training_data
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.record import make_record, sha256_bytes, sha256_file, step_record
from tunesmith.generation.result import NO_LEGAL_NOTE, GenerationResult
from tunesmith.tokenization.midi_io import MAX_FILE_BYTES, STEPS_PER_BAR, grid_notes, load_midi
from tunesmith.ui.params import parse_prompt_notes
from tunesmith.ui.spans import RollOptions, bar_span, roles_after, roll_image
from tunesmith.ui.state import Session, Version

MAX_UPLOAD_BYTES = MAX_FILE_BYTES
AUDIO_SAMPLE_RATE = 22050  # a preview player: half the bytes of 44.1 kHz per request
EXAMPLE_OPENING_NOTES = 48  # prompt length suggested when an example is picked


class GeneratorLike(Protocol):
    """The part of ``tunesmith.generation.generator.Generator`` the UI calls."""

    checkpoint: Path | None
    checksum: str | None

    def generate(
        self,
        prompt: symusic.Score | None = None,
        prompt_notes: int | None = None,
        config: GenerationConfig | None = None,
        callback: Callable[[int, int], bool | None] | None = None,
    ) -> GenerationResult: ...

    def infill(
        self,
        score: symusic.Score,
        bars: tuple[int, int],
        config: GenerationConfig | None = None,
        callback: Callable[[int, int], bool | None] | None = None,
    ) -> GenerationResult: ...


@dataclass(frozen=True)
class GenerationRequest:
    """One press of Generate, Extend or Regenerate bars: what to continue, with which config.

    ``prompt_info`` (name and sha256 of an upload) and ``previous_steps`` carry the
    piece's record forward so that its JSON replays every step. ``bars`` (first, last,
    1-based) are the bars an infill regenerates.
    """

    config: GenerationConfig
    action: str = "generate"  # or "extend", "infill"
    prompt: symusic.Score | None = None
    prompt_notes: int | None = None
    prompt_info: dict[str, Any] | None = None
    previous_steps: tuple[dict[str, Any], ...] = ()
    bars: tuple[int, int] | None = None


@dataclass(frozen=True)
class RunHooks:
    """What a generation asks of the page while it runs and how it draws the result.

    ``should_stop`` (the tab's Stop flag) is polled after every token, ``progress(done,
    target)`` gets the progress in notes (or grid steps), ``roll`` is how to draw the roll.
    """

    should_stop: Callable[[], bool] | None = None
    progress: Callable[[int, int], None] | None = None
    roll: RollOptions | None = None

    def callback(self, done: int, target: int) -> bool:
        """The generator's callback: report progress, then whether to stop."""
        if self.progress is not None:
            self.progress(done, target)
        return bool(self.should_stop and self.should_stop())


NO_HOOKS = RunHooks()  # no Stop flag, no progress bar, the default roll


@dataclass(frozen=True)
class View:
    """Everything the page shows for one version of the piece."""

    audio: tuple[int, np.ndarray] | None = None
    roll: np.ndarray | None = None
    summary: str = ""
    midi_path: str | None = None
    params_json: str = ""
    message: str = ""


def read_upload(path: str | os.PathLike[str], max_bytes: int = MAX_UPLOAD_BYTES) -> symusic.Score:
    """Parse an uploaded MIDI file, refusing one over ``max_bytes`` or without notes."""
    path = Path(path)
    name = path.name
    if not path.exists() and not path.is_symlink():
        raise BadMidiError(f"{name}: the upload is gone, please upload it again")
    score = load_midi(path, name=name, max_bytes=max_bytes)
    if len(grid_notes(score)) == 0:
        raise BadMidiError(f"{name}: no notes in the piano range (21-108)")
    return score


def list_examples(folder: str | os.PathLike[str] | None, limit: int = 6) -> dict[str, Path]:
    """Up to ``limit`` MIDI files of ``folder`` by name, spread evenly over its sorted listing."""
    if folder is None or not Path(folder).is_dir():
        return {}
    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix.lower() in (".mid", ".midi") and p.is_file()
    )
    if len(files) > limit:
        files = [files[i * len(files) // limit] for i in range(limit)]
    return {p.name: p for p in files}


def _summary(result: GenerationResult, score: symusic.Score, checkpoint: Path | None) -> str:
    total, kept, new = len(result.grid), result.n_prompt_notes, result.n_new_notes
    counts = f"{total} notes ({kept} prompt + {new} new)"
    if result.span is not None:
        first, last = result.span[0] // STEPS_PER_BAR + 1, -(-result.span[1] // STEPS_PER_BAR)
        counts = f"{total} notes ({kept} kept + {new} new in bars {first}-{last})"
    parts = [
        counts,
        f"{score.to('second').end():.1f} s long",
        f"{result.tokens_per_second:.0f} tokens/s",
        f"took {result.seconds:.2f} s",
    ]
    # An infill's grid is in time order, its new notes in the middle: check all of it.
    from_note = 0 if result.span is not None else result.n_prompt_notes
    copy = copy_of_training_data(checkpoint, result.grid, from_note)
    if copy is not None:  # only a checkpoint that carries its training set's index can tell
        parts.append(copy.describe())
    if result.stop_reason == "cancelled":
        parts.append("stopped early")
    elif result.stop_reason == NO_LEGAL_NOTE:
        parts.append("stopped: the rules left no legal note")
    return " · ".join(parts)


def run_generation(
    generator: GeneratorLike,
    session: Session,
    request: GenerationRequest,
    out_dir: Path,
    hooks: RunHooks = NO_HOOKS,
) -> tuple[Session, View]:
    """Call the generator and turn its result into a new version of the piece."""
    if request.bars is not None:
        result = generator.infill(
            request.prompt, bars=request.bars, config=request.config, callback=hooks.callback
        )
    else:
        result = generator.generate(
            request.prompt, request.prompt_notes, config=request.config, callback=hooks.callback
        )
    notes = list(result.warnings)
    if result.stop_reason == "cancelled":
        notes.append(f"Stopped after {result.n_new_notes} new notes.")
        if result.n_new_notes == 0:
            return session, render_view(session.current, out_dir, " ".join(notes), hooks.roll)
    version = _new_version(generator, request, result, session.current)
    return session.push(version), render_view(version, out_dir, " ".join(notes), hooks.roll)


def _new_version(
    generator: GeneratorLike,
    request: GenerationRequest,
    result: GenerationResult,
    previous: Version | None,
) -> Version:
    """The version a generation made, with its record and each note's role."""
    step = {"action": request.action, **step_record(result, request.prompt_notes)}
    if request.bars is not None:
        step["bars"] = list(request.bars)
    checkpoint = generator.checkpoint
    return Version(
        midi=result.score.dumps_midi(),
        n_prompt_notes=int(result.n_prompt_notes),
        summary=_summary(result, result.score, checkpoint),
        steps=(*request.previous_steps, step),
        prompt=request.prompt_info,
        model={"path": str(checkpoint) if checkpoint else None, "sha256": generator.checksum},
        roles=roles_after(result, request.action, previous),
        span=None if result.span is None else (int(result.span[0]), int(result.span[1])),
    )


def generate(
    generator: GeneratorLike,
    session: Session,
    upload: str | os.PathLike[str] | None,
    example: str | os.PathLike[str] | None,
    prompt_notes: Any,
    config: GenerationConfig,
    out_dir: Path,
    hooks: RunHooks = NO_HOOKS,
) -> tuple[Session, View]:
    """Generate a new piece from the uploaded prompt, else the example, else nothing."""
    source = upload or example
    request = GenerationRequest(config=config)
    if source:
        info = {"name": Path(source).name, "sha256": sha256_file(source)}
        request = GenerationRequest(
            config=config,
            prompt=read_upload(source),
            prompt_notes=parse_prompt_notes(prompt_notes),
            prompt_info=info,
        )
    return run_generation(generator, session, request, out_dir, hooks)


def extend(
    generator: GeneratorLike,
    session: Session,
    config: GenerationConfig,
    out_dir: Path,
    hooks: RunHooks = NO_HOOKS,
) -> tuple[Session, View]:
    """Continue the current piece (all of it is the prompt)."""
    current = session.current
    if current is None:
        raise TunesmithError("nothing to extend yet: press Generate first")
    request = GenerationRequest(
        config=config,
        action="extend",
        prompt=load_midi(current.midi, name="the current piece"),
        prompt_info=current.prompt,
        previous_steps=current.steps,
    )
    return run_generation(generator, session, request, out_dir, hooks)


def regenerate(
    generator: GeneratorLike,
    session: Session,
    first_bar: Any,
    last_bar: Any,
    config: GenerationConfig,
    out_dir: Path,
    hooks: RunHooks = NO_HOOKS,
) -> tuple[Session, View]:
    """Regenerate bars ``first_bar..last_bar`` (1-based, inclusive) of the current piece.

    Every note outside them stays; a bad span, or a model that cannot fill in,
    raises a one-line :class:`TunesmithError` and the piece stays as it is.
    """
    current = session.current
    if current is None:
        raise TunesmithError("nothing to regenerate yet: press Generate first")
    score = load_midi(current.midi, name="the current piece")
    bars = bar_span(first_bar, last_bar, grid_notes(score))
    if not callable(getattr(generator, "infill", None)):
        raise TunesmithError("this model cannot regenerate bars (it has no infilling)")
    request = GenerationRequest(
        config=config,
        action="infill",
        prompt=score,
        prompt_info=current.prompt,
        previous_steps=current.steps,
        bars=bars,
    )
    return run_generation(generator, session, request, out_dir, hooks)


def undo(session: Session, out_dir: Path, roll: RollOptions | None = None) -> tuple[Session, View]:
    """Go back to the previous version."""
    if len(session.history) < 2:
        raise TunesmithError("nothing to undo")
    previous = session.pop()
    return previous, render_view(previous.current, out_dir, roll=roll)


def redraw_roll(session: Session, roll: RollOptions) -> np.ndarray | None:
    """The current piece's roll alone, for a change of the chosen bars or of the view."""
    current = session.current
    return None if current is None else roll_image(current, roll)


def replay_json(version: Version) -> str:
    """How ``version`` was made, as the sidecar ``tunesmith generate`` writes.

    ``tunesmith generate --replay THIS.json --prompt PROMPT.mid --out x.mid`` remakes
    the first step; each Extend or Regenerate bars that followed is listed under
    ``extensions``.
    """
    first, *rest = version.steps
    step = {k: v for k, v in first.items() if k != "action"}
    prompt = version.prompt
    record = make_record(step, version.midi, version.model or {}, prompt, extensions=rest)
    return json.dumps(record, indent=2, default=str)


def _write_midi(data: bytes, out_dir: Path) -> Path:
    # Named by content: Undo and repeated renders reuse the file instead of piling up.
    path = out_dir / f"tunesmith-{sha256_bytes(data)[:12]}.mid"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=".tunesmith-", suffix=".tmp", dir=out_dir)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    return path


def render_view(
    version: Version | None, out_dir: Path, message: str = "", roll: RollOptions | None = None
) -> View:
    """Audio, piano roll, summary, MIDI file and JSON of ``version`` (an empty view for None).

    A missing SoundFont costs only the audio: the message says how to install one.
    """
    from tunesmith.ui.audio import render_score

    if version is None:
        return View(message=message)
    score = load_midi(version.midi, name="the current piece")
    grid = grid_notes(score)
    audio: tuple[int, np.ndarray] | None
    try:
        audio = render_score(score, sample_rate=AUDIO_SAMPLE_RATE)
    except TunesmithError as err:
        audio, message = None, " ".join(filter(None, [message, f"No audio: {err}"]))
    if audio is not None and len(audio[1]) == 0:
        audio = None  # a piece without notes: nothing to play
    return View(
        audio=audio,
        roll=roll_image(version, roll, grid),
        summary=version.summary,
        midi_path=str(_write_midi(version.midi, out_dir)),
        params_json=replay_json(version),
        message=message,
    )
