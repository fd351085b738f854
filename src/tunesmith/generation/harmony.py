"""The key a generation is in, and the chord-chart and ending rules that follow from it.

The key (the tonic an ending closes on, the scale a chart's weak beats may use)
comes from ``--scale`` if given; else from the prompt by Krumhansl-Kessler key
finding; else from the chart's first chord (``Am F C G``: A minor); else C major.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import symusic

from tunesmith.errors import BadParameterError
from tunesmith.generation.chord_rule import N_PITCHES, ChordRule
from tunesmith.generation.chords import ChordChart
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.constraints import MODES, parse_scale
from tunesmith.generation.ending import EndingPlan, mode_of_scale, tonic_of_scale
from tunesmith.generation.ending_rule import EndingRule
from tunesmith.generation.grammar import Rule
from tunesmith.generation.keyfind import find_key
from tunesmith.generation.pitch_masks import pitch_allowed
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import grid_notes
from tunesmith.tokenization.pairs import PITCH_OFFSET, PairTokenizer


@dataclass(frozen=True)
class Tonality:
    """A tonic pitch class, ``"major"`` or ``"minor"``, the scale's pitch classes, and whence."""

    tonic: int
    mode: str
    scale: frozenset[int]
    source: str  # "scale", "prompt", "chords" or "default"


def _of_mode(tonic: int, mode: str, source: str) -> Tonality:
    return Tonality(tonic, mode, frozenset((tonic + i) % 12 for i in MODES[mode]), source)


def resolve_tonality(
    cfg: GenerationConfig, prompt: symusic.Score | None, chart: ChordChart | None
) -> Tonality:
    """The key of the generation, by the order in the module docstring."""
    if cfg.scale is not None:
        tonic, scale = tonic_of_scale(cfg.scale), parse_scale(cfg.scale)
        return Tonality(tonic, mode_of_scale(tonic, scale), scale, "scale")
    if prompt is not None:
        key = find_key(grid_notes(prompt))
        if key is not None:
            return _of_mode(key.tonic, key.mode, "prompt")
    if chart is not None:
        chord = chart.spans[0].chord
        minor = (chord.root + 3) % 12 in chord.pitch_classes
        minor = minor and (chord.root + 4) % 12 not in chord.pitch_classes
        return _of_mode(chord.root, "minor" if minor else "major", "chords")
    return _of_mode(0, "major", "default")


def chord_and_ending_rules(
    cfg: GenerationConfig, tokenizer: Tokenizer, prompt: symusic.Score | None
) -> list[Rule]:
    """The rules ``--chords``/``--bass-root`` and ``--end`` ask for (none when neither is given).

    ``cfg.bars`` must be set for ``--end`` (``Generator.generate`` turns ``seconds`` into bars).
    """
    chart = cfg.chord_chart
    if chart is None and not cfg.end:
        return []
    if not isinstance(tokenizer, PairTokenizer):
        raise BadParameterError("--chords and --end need a model with the pairs encoding")
    key = resolve_tonality(cfg, prompt, chart)
    rules: list[Rule] = []
    if chart is not None:
        legal = pitch_allowed(tokenizer, cfg)[PITCH_OFFSET + np.arange(N_PITCHES)]
        stop = cfg.bars - 1 if cfg.end and cfg.bars is not None else None
        rules.append(ChordRule(chart, key.scale, legal, tokenizer.vocab_size, cfg.bass_root, stop))
    if cfg.end:
        if cfg.bars is None:
            raise BadParameterError("--end: needs a length to end at (--bars N or --seconds S)")
        plan = EndingPlan(key.tonic, key.mode, cfg.bars, cfg.pitch_bounds)
        rules.append(EndingRule(plan, tokenizer.vocab_size, cfg.max_polyphony))
    return rules
