"""Every knob of generation, with its help, bounds, flag and UI control, validated in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from tunesmith.errors import BadParameterError
from tunesmith.generation.chords import ChordChart, check_chart
from tunesmith.generation.constraints import parse_pitch_range, parse_scale
from tunesmith.generation.ending import check_length
from tunesmith.generation.knobs import SEARCHES, Knob, knob, knob_of

Search = Literal["greedy", "top_k", "top_p", "beam"]
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 64-bit seeds
SCALE_SUGGESTIONS = ("C:major", "G:major", "D:major", "F:major", "A:minor", "E:minor", "D:minor",
                     "D:dorian", "C:major_pentatonic", "A:blues")  # fmt: skip


@dataclass(frozen=True)
class GenerationConfig:
    """How to continue a piece. Lengths count new notes (``notes``) or bars of 4/4 (``bars``).

    Each field's metadata holds its :class:`~tunesmith.generation.knobs.Knob` (help,
    bounds, CLI flag, UI control); see :func:`knobs`. ``max_repeat`` exists because
    greedy and beam search otherwise get stuck on one note (the corpus rarely repeats
    a pitch more than 8 times). The model may end a piece (EOS) once it has added a
    note and reached ``eos_after`` of the length, unless ``stop_at_eos`` is False.
    """

    search: Search = knob(
        "top_k", "decoding method", str, "--search", choices=SEARCHES, ui="radio",
        ui_label="Search",
    )  # fmt: skip
    notes: int | None = knob(
        64, "new notes to generate", int, "--notes", low=1, high=100_000, optional=True,
        group="length", ui="slider", ui_label="New notes", ui_high=1024,
    )  # fmt: skip
    bars: int | None = knob(
        None, "bars of 4/4 to generate instead of a note count", int, "--bars", low=1,
        high=10_000, optional=True, group="length",
    )  # fmt: skip
    seconds: float | None = knob(
        None, "seconds of music to generate, as whole bars at the prompt's tempo (or --bpm)",
        float, "--seconds", low=0.0, high=3600.0, low_open=True, optional=True, group="length",
        ui="text", ui_label="Length in seconds (empty = new notes)", ui_off="",
    )  # fmt: skip
    end: bool = knob(
        False, "close the last bar on the tonic chord, tonic in the bass (needs --bars or "
        "--seconds)", bool, "--end", ui="checkbox", ui_label="End on the tonic",
    )  # fmt: skip
    top_k_notes: int = knob(
        24, "top-k: candidates for a pitch (or a rest)", int, "--top-k-notes", low=1,
        searches=("top_k",), ui="slider", ui_high=64,
    )  # fmt: skip
    top_k_durations: int = knob(
        16, "top-k: candidates for a duration", int, "--top-k-durations", low=1,
        searches=("top_k",), ui="slider", ui_high=32,
    )  # fmt: skip
    top_k_offset: int = knob(
        0, "top-k: drop the N most likely candidates first", int, "--top-k-offset", low=0,
        searches=("top_k",), ui="slider", ui_high=16,
    )  # fmt: skip
    temperature: float = knob(
        1.1, "<1 safer, >1 wilder; a tiny value is greedy", float, "--temperature", low=0.0,
        high=100.0, low_open=True, searches=("top_k", "top_p"), ui="slider", ui_high=3.0,
        ui_step=0.05,
    )  # fmt: skip
    top_p: float = knob(
        0.95, "top-p: nucleus mass", float, "--top-p", low=0.0, high=1.0, low_open=True,
        searches=("top_p",), ui="slider", ui_step=0.01,
    )  # fmt: skip
    beam_width: int = knob(
        4, "beam: number of beams", int, "--beam-width", low=1, high=64, searches=("beam",),
        ui="slider",
    )  # fmt: skip
    length_penalty: float = knob(
        0.0, "beam: score / length**penalty", float, "--length-penalty", low=-10.0, high=10.0,
        searches=("beam",), ui="slider", ui_step=0.1,
    )  # fmt: skip
    creativity: int = knob(
        0, "scales a rest's probability by 1 - C/1000 (fewer rests, denser music)", int,
        "--creativity", low=0, high=1000, ui="slider", ui_label="Creativity",
    )  # fmt: skip
    scale: str | None = knob(
        None, "keep to a scale, e.g. C:major, A:minor, D:dorian", str, "--scale",
        optional=True, ui="dropdown", ui_label="Scale", ui_off="",
        suggestions=SCALE_SUGGESTIONS,
    )  # fmt: skip
    pitch_range: str | None = knob(
        None, "keep pitches within LO-HI, e.g. 48-84", str, "--pitch-range", optional=True,
        ui="text", ui_label="Pitch range", ui_off="",
    )  # fmt: skip
    max_polyphony: int | None = knob(
        None, "at most N notes sounding at once", int, "--max-polyphony", low=1,
        optional=True, ui="number", ui_label="Max polyphony (0 = no limit)", ui_off=0,
    )  # fmt: skip
    max_repeat: int | None = knob(
        8, "at most N notes in a row of one pitch (pairs tokenizer)", int, "--max-repeat",
        low=1, optional=True, ui="number", ui_label="Max repeats of a pitch (0 = no limit)",
        ui_off=0,
    )  # fmt: skip
    chords: str | None = knob(
        None, 'chord chart: "Am F C G" is a chord a bar; with bar lines the chords of a bar share it',
        str, "--chords", optional=True, ui="text", ui_label="Chords", ui_off="",
    )  # fmt: skip
    bass_root: bool = knob(
        False, "the lowest note at each chord change is the chord's root (or slash bass)",
        bool, "--bass-root", ui="checkbox", ui_label="Bass on the root",
    )  # fmt: skip
    max_copy: int = knob(
        16, "copy at most N consecutive notes of a training file, in any transposition (needs "
        "the model's memorisation index; 0 = off)", int, "--max-copy", low=0, high=100_000,
        ui="number", ui_label="Max notes copied from training (0 = off)",
    )  # fmt: skip
    repetition_penalty: float | None = knob(
        None, "divide positive (multiply negative) logits of the pitches of the last 64 notes "
        "by P (1 = off; default: 1.3 for greedy and beam, off for sampling)", float,
        "--repetition-penalty", low=1.0, high=100.0, optional=True, ui="number", ui_low=0.0,
        ui_step=0.05, ui_off=0.0, ui_label="Repetition penalty (0 = the search's default)",
        by_search=(("greedy", 1.3), ("beam", 1.3)), off=1.0,
    )  # fmt: skip
    repeat_bias: float = knob(
        1.0, "multiply by B the odds of the token that continues an earlier bar (1, 2, 4 or 8 "
        "bars back) which the current bar repeats so far, note for note (pairs tokenizer; "
        "1 = off)", float, "--repeat-bias", low=1.0, high=100.0, ui="slider", ui_high=30.0,
        ui_step=0.5,
    )  # fmt: skip
    repeat_bars: float | None = knob(
        None, "the chance that a new bar repeats an earlier one (1, 2, 4 or 8 bars back) note "
        "for note; the model picks which by its first note (pairs tokenizer; 0 = off; default: "
        "0.2 for top-k and top-p, off for greedy and beam)", float, "--repeat-bars", low=0.0,
        high=1.0, optional=True, ui="number", ui_low=-1, ui_off=-1, ui_step=0.05,
        ui_label="Repeat bars, chance per bar (-1 = the search's default)",
        by_search=(("top_k", 0.2), ("top_p", 0.2)), off=0.0,
    )  # fmt: skip
    repeat_run: float = knob(
        2.0, "planned repeats (--repeat-bars) come in runs of about N bars, so that a phrase "
        "comes back whole and pieces differ in how much they repeat (1: each bar drawn alone)",
        float, "--repeat-run", low=1.0, high=64.0, ui="slider", ui_high=16.0, ui_step=0.5,
        ui_label="Repeat bars, mean run (bars)",
    )  # fmt: skip
    no_repeat_ngram_size: int | None = knob(
        None, "never repeat N consecutive notes (pitch and duration) of the piece: the pitch "
        "that would is banned (0 = off; default: 4 for greedy and beam, off for sampling)", int,
        "--no-repeat-ngram-size", low=0, high=1000, optional=True, ui="number", ui_low=-1,
        ui_off=-1, ui_label="No-repeat n-gram (-1 = the search's default)",
        by_search=(("greedy", 4), ("beam", 4)), off=0,
    )  # fmt: skip
    seed: int = knob(
        0, "random seed; the same seed gives the same music", int, "--seed", low=0,
        high=MAX_SEED, ui="number", ui_label="Seed",
    )  # fmt: skip
    bpm: float | None = knob(
        None, "tempo of the output (default: the prompt's, else 120)", float, "--bpm",
        low=1.0, high=1000.0, optional=True,
    )  # fmt: skip
    stop_at_eos: bool = knob(
        True, "let the model end the piece before the length is reached", bool,
        "--stop-at-eos",
    )  # fmt: skip
    eos_after: float = knob(
        0.5, "the model may end the piece only once this share of the length is reached "
        "(0: after its first note; 1: never before the length)", float, "--eos-after",
        low=0.0, high=1.0,
    )  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            knob_of(f).check(f.name, getattr(self, f.name))
        if self.bars is not None or self.seconds is not None:
            object.__setattr__(self, "notes", None)
        elif self.notes is None:
            raise BadParameterError("a number is needed (or give bars)", field="notes")
        if self.scale is not None:
            parse_scale(self.scale)
        if self.pitch_range is not None:
            parse_pitch_range(self.pitch_range)
        check_length(self.end, self.bars, self.seconds)
        if self.chords is not None:
            check_chart(
                self.chord_chart, self.scale_pitch_classes, self.pitch_bounds, self.bass_root
            )
        elif self.bass_root:
            raise BadParameterError("--bass-root: needs a chord chart (--chords)")

    @property
    def scale_pitch_classes(self) -> frozenset[int] | None:
        """The scale's pitch classes, or None for no scale."""
        return parse_scale(self.scale) if self.scale else None

    @property
    def pitch_bounds(self) -> tuple[int, int] | None:
        """The pitch range as ``(low, high)``, or None for the whole piano."""
        return parse_pitch_range(self.pitch_range) if self.pitch_range else None

    @property
    def chord_chart(self) -> ChordChart | None:
        """The parsed ``chords``, or None for no chart."""
        return ChordChart.parse(self.chords) if self.chords is not None else None

    def resolved(self, by_search: bool = True) -> GenerationConfig:
        """This config with each search-dependent default (``None``) replaced by its value
        for ``search`` (greedy and beam loop on a few pitches without the repetition
        remedies, which would cost sampled music its bass and variety of texture), or by
        its ``off`` value when ``by_search`` is False (a model they cannot apply to)."""
        given = {
            f.name: knob_of(f).default_for(self.search) if by_search else knob_of(f).off
            for f in fields(self)
            if knob_of(f).by_search and getattr(self, f.name) is None
        }
        return replace(self, **given) if given else self

    def earliest_end(self, steps_per_bar: int) -> int:
        """The progress (new notes; grid steps when the length is in bars) from which the
        model may end the piece: ``eos_after`` of the length."""
        target = self.bars * steps_per_bar if self.bars is not None else self.notes or 0
        return math.ceil(self.eos_after * target)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationConfig:
        """A config from field values; unknown names are refused, missing ones default."""
        if not isinstance(data, dict):
            raise BadParameterError(f"generation parameters must be a mapping, not {data!r}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise BadParameterError(
                f"unknown generation parameter(s): {', '.join(sorted(map(str, unknown)))}"
            )
        return cls(**data)

    def with_params(self, **params: Any) -> GenerationConfig:
        """This config with ``params`` (field values) replaced, all checked again.

        Giving ``notes`` without ``bars`` switches the length back to notes; giving
        ``notes`` or ``bars`` without ``seconds`` drops ``seconds``.
        """
        merged = {**self.to_dict(), **params}
        if params.get("notes") is not None and "bars" not in params:
            merged["bars"] = None
        if (params.get("notes") is not None or params.get("bars") is not None) and (
            "seconds" not in params
        ):
            merged["seconds"] = None
        return GenerationConfig.from_dict(merged)


def knobs() -> dict[str, Knob]:
    """Every field's knob, by field name, in declaration order."""
    return {f.name: knob_of(f) for f in fields(GenerationConfig)}


def knob_table() -> str:
    """Every knob as a Markdown table (docs/KNOBS.md is this, checked by a test)."""
    defaults = GenerationConfig().to_dict()
    lines = ["| field | flag | default | allowed | searches | help |", "|---|---|---|---|---|---|"]
    for name, k in knobs().items():
        allowed = ", ".join(k.choices) if k.choices else k.bounds_text()
        if k.kind in (str, bool) and not k.choices:
            allowed = "true/false" if k.kind is bool else "text"
        allowed += " or none" if k.optional else ""
        searches = "all" if set(k.searches) == set(SEARCHES) else ", ".join(k.searches)
        default = "by search" if k.by_search else defaults[name]
        lines.append(f"| `{name}` | `{k.flag}` | {default} | {allowed} | {searches} | {k.help} |")
    return "\n".join(lines) + "\n"


def resolve_config(config: GenerationConfig | None, params: dict[str, Any]) -> GenerationConfig:
    """``config`` (default: the defaults) with ``params`` applied, every field checked."""
    if config is not None and not isinstance(config, GenerationConfig):
        raise BadParameterError(
            f"expected a GenerationConfig, not {type(config).__name__}", field="config"
        )
    cfg = config or GenerationConfig()
    return cfg.with_params(**params) if params else cfg
