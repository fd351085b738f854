"""Infilling: regenerate a span of bars of a piece and keep the rest (``Generator.infill``).

The prompt is the fill-in-the-middle one the model was trained on
(:func:`tunesmith.data.infill.infill_prompt`: prefix, gap length, suffix, then
``MIDDLE``); the middle is decoded by the ordinary searches under every rule,
plus :class:`~tunesmith.generation.infill_rule.GapRule`, which ends it exactly at
the gap's end; :func:`tunesmith.data.infill.assemble` puts it back between the
kept notes. Nothing here imports the Generator: it calls these pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesmith.data.infill import InfillPrompt, assemble, infill_prompt
from tunesmith.errors import BadCheckpointError, BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.infill_rule import GapRule
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import STEPS_PER_BAR, score_from_grid
from tunesmith.tokenization.pairs import DUR_OFFSET, FILL_END, SEP, PairTokenizer

MIDDLE_IDS_PER_STEP = 4  # room kept for the middle: two notes on every 16th, denser than most music


def check_infill_model(tokenizer: Tokenizer, where: str) -> None:
    """Refuse a model whose tokenizer has no fill-in ids: it never learned to fill a gap."""
    if not (isinstance(tokenizer, PairTokenizer) and tokenizer.infill):
        raise BadCheckpointError(
            f"{where}: was not trained for infilling (retrain with --fim-rate 0.5, "
            "e.g. tunesmith train MIDI_DIR --init-from MODEL --fim-rate 0.5)"
        )


def check_span(bars: Any) -> tuple[int, int]:
    """``bars`` as ``(first, last)`` whole numbers; the piece checks the rest."""
    ok = isinstance(bars, tuple | list) and len(bars) == 2
    if not ok or any(isinstance(b, bool) or not isinstance(b, int | np.integer) for b in bars):
        raise BadParameterError(
            f"give the span as two bar numbers (first, last), not {bars!r}", field="bars"
        )
    return int(bars[0]), int(bars[1])


def prompt_budget(context: int, gap: int) -> int:
    """Ids the infill prompt may take so that the middle still fits in the model's context.

    The middle is given up to :data:`MIDDLE_IDS_PER_STEP` ids a step, at most half
    the context; a longer fill slides the window, which drops the prefix's start first.
    """
    return context - min(context // 2, MIDDLE_IDS_PER_STEP * gap + 2)


@dataclass(frozen=True)
class InfillPlan:
    """What to decode for a fill and how to put the piece back together."""

    prompt: InfillPrompt
    config: GenerationConfig  # the user's, with the length set to the gap and no EOS
    rule: GapRule
    warnings: tuple[str, ...] = ()

    @property
    def span(self) -> tuple[int, int]:
        return self.prompt.start, self.prompt.stop

    def result_fields(self, new_ids: list[int], bpm: float) -> dict[str, Any]:
        """The :class:`GenerationResult` fields that depend on the decoded middle.

        ``new_ids`` are the middle's ids as decoded; a fill that used up its gap gets the
        ``FILL_END`` the gap rule forces there (a cancelled one does not).
        """
        middle = PairTokenizer().decode_grid(new_ids)
        if int(self.rule.gap) == sum_of_waits(new_ids):
            new_ids = [*new_ids, FILL_END]
        grid = assemble(self.prompt, middle).astype(np.int32)  # as grid_notes gives
        return {
            "score": score_from_grid(grid, bpm=bpm),
            "grid": grid,
            "ids": self.prompt.ids + new_ids,
            "prompt_length": len(self.prompt.ids),
            "n_prompt_notes": len(self.prompt.prefix) + len(self.prompt.suffix),
            "n_new_notes": len(middle),
            "span": self.span,
        }


def sum_of_waits(ids: list[int]) -> int:
    """Steps the ``SEP duration`` pairs of seed ids advance."""
    return sum(b - DUR_OFFSET for a, b in zip(ids, ids[1:], strict=False) if a == SEP)


def plan_infill(
    grid: np.ndarray, bars: Any, cfg: GenerationConfig, tokenizer: Tokenizer, context: int
) -> InfillPlan:
    """The prompt, config and gap rule that regenerate bars ``first..last`` of ``grid``.

    ``cfg``'s length (``notes``/``bars``) and ``stop_at_eos`` are replaced: a fill is as
    long as its gap and ends it. A span outside the piece, reversed or empty, or one
    whose gap leaves the model's context no room for a note, is refused naming ``bars``.
    """
    first, last = check_span(bars)
    gap = (last - first + 1) * STEPS_PER_BAR
    budget = prompt_budget(context, max(gap, 0))
    try:
        prompt = infill_prompt(grid, (first, last), max_tokens=budget)
    except BadParameterError as err:
        if not str(err).startswith("max_tokens"):
            raise
        raise BadParameterError(
            f"{first}-{last} is a gap of {gap} steps: the model's context of {context} ids "
            "leaves no room for a note; choose fewer bars",
            field="bars",
        ) from None
    config = cfg.with_params(bars=last - first + 1, stop_at_eos=False)
    return InfillPlan(prompt, config, GapRule(prompt.gap, tokenizer.vocab_size),
                      _cut_warning(grid, (first, last), prompt, context))  # fmt: skip


def _cut_warning(
    grid: np.ndarray, bars: tuple[int, int], prompt: InfillPrompt, context: int
) -> tuple[str, ...]:
    """A warning when the music around the span did not all fit in the prompt."""
    whole = len(infill_prompt(grid, bars).ids)
    if whole <= len(prompt.ids):
        return ()
    return (
        f"the music around bars {bars[0]}-{bars[1]} has {whole} tokens, more than the model's "
        f"context of {context} leaves beside the fill: the model sees the part nearest the span",
    )
