"""Every knob of generation, validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from tunesmith.errors import BadParameterError
from tunesmith.generation.constraints import parse_pitch_range, parse_scale

SEARCHES = ("greedy", "top_k", "top_p", "beam")
Search = Literal["greedy", "top_k", "top_p", "beam"]


@dataclass(frozen=True)
class GenerationConfig:
    """How to continue a piece. Lengths count new notes (``notes``) or bars of 4/4 (``bars``).

    ``top_k_notes`` applies where the next token is a pitch (or a rest), ``top_k_durations``
    where it is a duration; ``top_k_offset`` drops the n most likely candidates first.
    ``creativity`` (0-1000) multiplies the rest token's probability by ``1 - creativity/1000``.
    ``max_repeat`` caps how many notes in a row may have one pitch (8 by default: the
    corpus rarely goes past it, and greedy or beam search otherwise gets stuck on one note;
    seed tokenizer only).
    The model may end a piece (EOS) once it has added a note, unless ``stop_at_eos`` is False.
    """

    search: Search = "top_k"
    notes: int | None = 64
    bars: int | None = None
    top_k_notes: int = 8
    top_k_durations: int = 4
    top_k_offset: int = 0
    temperature: float = 1.0
    top_p: float = 0.9
    beam_width: int = 4
    length_penalty: float = 0.0
    creativity: int = 0
    scale: str | None = None
    pitch_range: str | None = None
    max_polyphony: int | None = None
    max_repeat: int | None = 8
    seed: int = 0
    bpm: float | None = None
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise BadParameterError(
                f"--search: unknown search {self.search!r} (choose from {', '.join(SEARCHES)})"
            )
        if self.bars is not None:
            if self.bars <= 0:
                raise BadParameterError(f"--bars: must be a positive number, not {self.bars}")
            object.__setattr__(self, "notes", None)
        elif self.notes is None or self.notes <= 0:
            raise BadParameterError(f"--notes: must be a positive number, not {self.notes}")
        if (
            self.notes is not None
            and self.notes > 100_000
            or self.bars is not None
            and self.bars > 10_000
        ):
            raise BadParameterError("--notes/--bars: too long (at most 100000 notes or 10000 bars)")
        if self.top_k_notes < 1 or self.top_k_durations < 1:
            raise BadParameterError("--top-k-notes and --top-k-durations must be at least 1")
        if self.top_k_offset < 0:
            raise BadParameterError(f"--top-k-offset: must be 0 or more, not {self.top_k_offset}")
        if not 0.0 < self.temperature <= 100.0:
            raise BadParameterError(f"--temperature: must be in (0, 100], not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise BadParameterError(f"--top-p: must be in (0, 1], not {self.top_p}")
        if not 1 <= self.beam_width <= 64:
            raise BadParameterError(f"--beam-width: must be in 1-64, not {self.beam_width}")
        if not 0 <= self.creativity <= 1000:
            raise BadParameterError(f"--creativity: must be in 0-1000, not {self.creativity}")
        if self.max_polyphony is not None and self.max_polyphony < 1:
            raise BadParameterError(
                f"--max-polyphony: must be at least 1, not {self.max_polyphony}"
            )
        if self.max_repeat is not None and self.max_repeat < 1:
            raise BadParameterError(f"--max-repeat: must be at least 1, not {self.max_repeat}")
        if self.bpm is not None and not 1.0 <= self.bpm <= 1000.0:
            raise BadParameterError(f"--bpm: must be in 1-1000, not {self.bpm}")
        if self.scale is not None:
            parse_scale(self.scale)
        if self.pitch_range is not None:
            parse_pitch_range(self.pitch_range)

    @property
    def scale_pitch_classes(self) -> frozenset[int] | None:
        return parse_scale(self.scale) if self.scale else None

    @property
    def pitch_bounds(self) -> tuple[int, int] | None:
        return parse_pitch_range(self.pitch_range) if self.pitch_range else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise BadParameterError(
                f"unknown generation parameter(s): {', '.join(sorted(unknown))}"
            )
        return cls(**data)
