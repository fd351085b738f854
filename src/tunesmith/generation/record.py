"""The generation record: the JSON sidecar beside a generated piece, written, loaded and replayed.

``tunesmith generate`` writes it beside ``OUT.mid``; the web UI shows the same record as
"Parameters (JSON)". Either replays with ``tunesmith generate --replay FILE``: the same
parameters, model and prompt give the same MIDI bytes. A record of an infill (``tunesmith
infill``) names its tool so, holds the span (``"infill": {"bars": [5, 8], "span": [64,
128]}``) and its piece as the prompt, and replays with ``tunesmith infill --replay FILE``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.result import GenerationResult
from tunesmith.generation.sampler import SAMPLERS
from tunesmith.tokenization.midi_io import MAX_FILE_BYTES, STEPS_PER_BAR, read_file_bytes

TOOL = "tunesmith generate"
INFILL_TOOL = "tunesmith infill"


def sha256_bytes(data: bytes) -> str:
    """The short (16 hex digits) SHA-256 the record keeps of a file's bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_bytes` of a MIDI file's content, read as every MIDI file is: a regular
    file within the size cap (a FIFO or ``/dev/zero`` is refused, never read)."""
    return sha256_bytes(read_file_bytes(path, str(path), MAX_FILE_BYTES))


def step_record(result: GenerationResult, prompt_notes: int | None) -> dict[str, Any]:
    """What one generation did: its parameters, the prompt notes asked for, counts and timing.

    An infill's step also has ``infill``: the bars (1-based, inclusive) and grid steps regenerated.
    """
    infill = {}
    if result.span is not None:
        start, stop = result.span
        bars = [start // STEPS_PER_BAR + 1, stop // STEPS_PER_BAR]
        infill = {"infill": {"bars": bars, "span": [start, stop]}}
    return {
        "params": result.config.to_dict(),
        "prompt_notes": prompt_notes,
        "prompt_tokens": result.prompt_length,
        "new_tokens": len(result.new_ids),
        "prompt_notes_used": result.n_prompt_notes,
        "new_notes": result.n_new_notes,
        "stop_reason": result.stop_reason,
        "bpm": result.bpm,
        "generation_seconds": round(result.seconds, 4),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "backend": result.backend,
        # Absent: the torch sampler, which every record before the numpy one used.
        **({"sampler": result.sampler} if result.sampler != "torch" else {}),
        **infill,
    }


def make_record(
    step: dict[str, Any],
    midi: bytes,
    model: dict[str, Any],
    prompt: dict[str, Any] | None = None,
    extensions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The sidecar: ``step`` (:func:`step_record`), the model and prompt, the MIDI's checksum.

    ``model`` has ``path`` (None: the bundled model) and ``sha256``; ``prompt`` has
    ``path`` and/or ``name`` and ``sha256``; ``extensions`` lists later steps (the UI's Extend).
    """
    from tunesmith import __version__

    prompt = prompt or {}
    record = {
        "tool": INFILL_TOOL if "infill" in step else TOOL,
        **step,
        "model_path": model.get("path"),
        "model_sha256": model.get("sha256"),
        "prompt_path": prompt.get("path"),
        "prompt_name": prompt.get("name"),
        "prompt_sha256": prompt.get("sha256"),
        "midi_sha256": sha256_bytes(midi),
        "tunesmith": __version__,
    }
    if extensions is not None:
        record["extensions"] = extensions
    return record


def write_record(record: dict[str, Any], path: Path) -> None:
    """Write the sidecar as indented JSON."""
    path.write_text(json.dumps(record, indent=2, default=str))


@dataclass(frozen=True)
class Replay:
    """What a record says to make again: parameters, model, prompt (with checksums)."""

    config: GenerationConfig
    model_path: str | None
    model_sha256: str | None
    prompt_path: str | None
    prompt_name: str | None
    prompt_sha256: str | None
    prompt_notes: int | None
    infill_bars: tuple[int, int] | None = None  # an infill record: the bars it regenerated
    backend: str | None = None  # the decoding step that made it (older records: None)
    sampler: str = "torch"  # who drew its ids (records before the numpy sampler: torch)


# Knobs newer than some records, with the value that replays an older record unchanged (off).
BEFORE_THE_KNOB = {
    "max_copy": 0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "repeat_bias": 1.0,
    "repeat_bars": 0.0,
    "eos_after": 0.0,
    "repeat_run": 1.0,
}


def load_record(path: str | os.PathLike[str]) -> Replay:
    """Read and check a sidecar; every problem is one line naming the file (and the field)."""
    record = _read_json(Path(path))
    params = record.get("params")
    if not isinstance(params, dict):
        raise TunesmithError(f"{path}: no generation parameters ('params' is {params!r})")
    try:
        config = GenerationConfig.from_dict({**BEFORE_THE_KNOB, **params})
    except BadParameterError as err:
        raise TunesmithError(f"{path}: {err}") from None
    texts = {k: _optional(record, k, str, path) for k in _TEXT_FIELDS}
    prompt_notes = _optional(record, "prompt_notes", int, path)
    if prompt_notes is not None and prompt_notes < 0:
        raise TunesmithError(f"{path}: prompt_notes must be 0 or more, not {prompt_notes}")
    bars = _infill_bars(record, path) if record["tool"] == INFILL_TOOL else None
    backend = _one_of(record, "backend", _BACKENDS, path)
    sampler = _one_of(record, "sampler", SAMPLERS, path) or "torch"
    return Replay(
        config=config, prompt_notes=prompt_notes, infill_bars=bars, backend=backend,
        sampler=sampler, **texts,
    )  # fmt: skip


def _one_of(record: dict[str, Any], key: str, choices: tuple[str, ...], path: Any) -> str | None:
    """The record's text ``key`` (None when absent), refused in one line if not a choice."""
    value = _optional(record, key, str, path)
    if value is not None and value not in choices:
        raise TunesmithError(f"{path}: {key} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _infill_bars(record: dict[str, Any], path: Any) -> tuple[int, int]:
    infill = record.get("infill")
    bars = infill.get("bars") if isinstance(infill, dict) else None
    if (
        not isinstance(bars, list)
        or len(bars) != 2
        or any(isinstance(b, bool) or not isinstance(b, int) for b in bars)
    ):
        raise TunesmithError(f"{path}: an infill record without its bars ('infill' is malformed)")
    return bars[0], bars[1]


_TEXT_FIELDS = ("model_path", "model_sha256", "prompt_path", "prompt_name", "prompt_sha256")
_BACKENDS = ("torch", "onnx")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise TunesmithError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TunesmithError(f"{path}: not a generate JSON sidecar ({err})") from None
    if not isinstance(record, dict) or record.get("tool") not in (TOOL, INFILL_TOOL):
        raise TunesmithError(f'{path}: not a generate JSON sidecar (no "tool": "{TOOL}")')
    return record


def _optional(record: dict[str, Any], key: str, kind: type, path: Any) -> Any:
    value = record.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise TunesmithError(f"{path}: {key} must be {kind.__name__} or null, not {value!r}")
    return value
