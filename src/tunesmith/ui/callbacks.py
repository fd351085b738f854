"""What the web UI's buttons do, as plain functions of plain values (no Gradio here).

Each action takes the user's :class:`Session` and returns a new one plus a
:class:`View` (what the page shows). Bad input raises :class:`TunesmithError` with
a one-line message; ``tunesmith.ui.app`` shows it and keeps the old session.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from tunesmith.tokenization.midi_io import MAX_FILE_BYTES, grid_notes, load_midi
from tunesmith.ui.params import parse_prompt_notes
from tunesmith.ui.state import Session, Version

MAX_UPLOAD_BYTES = MAX_FILE_BYTES
AUDIO_SAMPLE_RATE = 22050  # a preview player: half the bytes of 44.1 kHz per request
EXAMPLE_OPENING_NOTES = 48  # prompt length suggested when an example is picked


class GeneratorLike(Protocol):
    """The part of ``tunesmith.generation.generator.Generator`` the UI calls."""

    def generate(
        self,
        prompt: symusic.Score | None = None,
        prompt_notes: int | None = None,
        *,
        callback: Callable[[int, int], bool | None] | None = None,
        **params: Any,
    ) -> Any: ...


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _summary(result: Any, score: symusic.Score, checkpoint: Any) -> str:
    total = len(result.grid)
    parts = [
        f"{total} notes ({result.n_prompt_notes} prompt + {result.n_new_notes} new)",
        f"{score.to('second').end():.1f} s long",
        f"{result.tokens_per_second:.0f} tokens/s",
        f"took {result.seconds:.2f} s",
    ]
    copy = copy_of_training_data(checkpoint, result.grid, result.n_prompt_notes)
    if copy is not None:  # only a checkpoint that carries its training set's index can tell
        parts.append(copy.describe())
    if result.stop_reason == "cancelled":
        parts.append("stopped early")
    return " · ".join(parts)


def run_generation(
    generator: GeneratorLike,
    session: Session,
    prompt: symusic.Score | None,
    prompt_notes: int | None,
    params: dict[str, Any],
    out_dir: Path,
    action: str,
    prompt_info: dict[str, Any] | None = None,
    previous_steps: tuple[dict[str, Any], ...] = (),
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Session, View]:
    """Call the generator and turn its result into a new version of the piece."""

    def callback(done: int, target: int) -> bool:
        if progress is not None:
            progress(done, target)
        return bool(should_stop and should_stop())

    result = generator.generate(prompt, prompt_notes, callback=callback, **params)
    checkpoint = getattr(generator, "checkpoint", None)
    notes: list[str] = list(getattr(result, "warnings", []) or [])
    if result.stop_reason == "cancelled":
        notes.append(f"Stopped after {result.n_new_notes} new notes.")
        if result.n_new_notes == 0:
            return session, render_view(session.current, out_dir, message=" ".join(notes))
    step = {
        "action": action,
        "prompt_notes": prompt_notes,
        "config": dataclasses.asdict(result.config),
        "n_new_notes": int(result.n_new_notes),
        "stop_reason": result.stop_reason,
    }
    version = Version(
        midi=result.score.dumps_midi(),
        n_prompt_notes=int(result.n_prompt_notes),
        summary=_summary(result, result.score, checkpoint),
        steps=(*previous_steps, step),
        prompt=prompt_info,
        model={
            "checkpoint": str(checkpoint) if checkpoint is not None else None,
            "checksum": getattr(generator, "checksum", None),
        },
    )
    return session.push(version), render_view(version, out_dir, message=" ".join(notes))


def generate(
    generator: GeneratorLike,
    session: Session,
    upload: str | os.PathLike[str] | None,
    example: str | os.PathLike[str] | None,
    prompt_notes: Any,
    params: dict[str, Any],
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Session, View]:
    """Generate a new piece from the uploaded prompt, else the example, else nothing."""
    source = upload or example
    prompt = read_upload(source) if source else None
    info = None
    if source:
        # The CLI's sidecar keeps 16 hex digits of the prompt's SHA-256; so does this.
        info = {"name": Path(source).name, "sha256": _sha256(Path(source).read_bytes())[:16]}
    n = parse_prompt_notes(prompt_notes) if prompt is not None else None
    return run_generation(
        generator, session, prompt, n, params, out_dir, "generate", info, (), should_stop, progress
    )


def extend(
    generator: GeneratorLike,
    session: Session,
    params: dict[str, Any],
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Session, View]:
    """Continue the current piece (all of it is the prompt)."""
    current = session.current
    if current is None:
        raise TunesmithError("nothing to extend yet: press Generate first")
    prompt = load_midi(current.midi, name="the current piece")
    return run_generation(
        generator,
        session,
        prompt,
        None,
        params,
        out_dir,
        "extend",
        current.prompt,
        current.steps,
        should_stop,
        progress,
    )


def undo(session: Session, out_dir: Path) -> tuple[Session, View]:
    """Go back to the previous version."""
    if len(session.history) < 2:
        raise TunesmithError("nothing to undo")
    previous = session.pop()
    return previous, render_view(previous.current, out_dir)


def replay_json(version: Version) -> str:
    """How ``version`` was made, as JSON for exact replay.

    The top level is the sidecar ``tunesmith generate`` writes, so
    ``tunesmith generate --replay THIS.json --prompt PROMPT.mid --out x.mid`` remakes
    the first step; each Extend that followed is listed under ``extensions``.
    """
    from tunesmith import __version__

    first, *rest = version.steps
    model = version.model or {}
    prompt = version.prompt or {}
    record = {
        "tool": "tunesmith generate",
        "params": first["config"],
        "model_path": model.get("checkpoint"),
        "model_sha256": model.get("checksum"),
        "prompt_name": prompt.get("name"),
        "prompt_sha256": prompt.get("sha256"),
        "prompt_notes": first["prompt_notes"],
        "new_notes": first["n_new_notes"],
        "stop_reason": first["stop_reason"],
        "extensions": [
            {"params": s["config"], "new_notes": s["n_new_notes"], "stop_reason": s["stop_reason"]}
            for s in rest
        ],
        "midi_sha256": _sha256(version.midi)[:16],
        "tunesmith": __version__,
    }
    return json.dumps(record, indent=2, default=str)


def _write_midi(data: bytes, out_dir: Path) -> Path:
    # Named by content: Undo and repeated renders reuse the file instead of piling up.
    path = out_dir / f"tunesmith-{_sha256(data)[:12]}.mid"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=".tunesmith-", suffix=".tmp", dir=out_dir)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    return path


def render_view(version: Version | None, out_dir: Path, message: str = "") -> View:
    """Audio, piano roll, summary, MIDI file and JSON of ``version`` (an empty view for None).

    A missing SoundFont costs only the audio: the message says how to install one.
    """
    from tunesmith.ui.audio import render_score
    from tunesmith.ui.pianoroll import draw_pianoroll

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
    roll = draw_pianoroll(grid, min(version.n_prompt_notes, len(grid)))
    return View(
        audio=audio,
        roll=roll,
        summary=version.summary,
        midi_path=str(_write_midi(version.midi, out_dir)),
        params_json=replay_json(version),
        message=message,
    )
