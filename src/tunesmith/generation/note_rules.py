"""The rules over each row's notes that ``GenerationConfig`` asks for: copy guard and repeats.

``max_copy`` (:mod:`~tunesmith.generation.copy_rule`), ``no_repeat_ngram_size``
(:mod:`~tunesmith.generation.no_repeat`), ``repetition_penalty``
(:mod:`~tunesmith.generation.repetition_penalty`), ``repeat_bias``
(:mod:`~tunesmith.generation.repeat_bias`) and ``repeat_bars``
(:mod:`~tunesmith.generation.bar_repeat`) all read the notes before the next
one, the prompt's included, so each is built from the prompt's ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunesmith.errors import BadParameterError
from tunesmith.generation.bar_repeat import BarRepeat
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.copy_rule import CopyRule
from tunesmith.generation.copyguard import CopyGuard
from tunesmith.generation.grammar import Rule
from tunesmith.generation.no_repeat import NoRepeatNgramRule
from tunesmith.generation.repeat_bias import RepeatBias
from tunesmith.generation.repetition_penalty import RepetitionPenalty

DEFAULT_MAX_COPY = GenerationConfig().max_copy


def check_pairs_encoding(cfg: GenerationConfig, pairs_encoding: bool) -> None:
    """Refuse the repetition knobs on a model whose tokens are not the pairs encoding's notes."""
    if pairs_encoding:
        return
    if cfg.no_repeat_ngram_size:
        raise BadParameterError(
            "needs a model with the pairs encoding", field="no_repeat_ngram_size"
        )
    if cfg.repetition_penalty not in (None, 1.0):  # None: the search's default, resolved off
        raise BadParameterError("needs a model with the pairs encoding", field="repetition_penalty")
    if cfg.repeat_bias != 1.0:
        raise BadParameterError("needs a model with the pairs encoding", field="repeat_bias")
    if cfg.repeat_bars:  # None: the search's default, resolved off
        raise BadParameterError("needs a model with the pairs encoding", field="repeat_bars")


def note_rules(
    cfg: GenerationConfig, prompt_ids: Sequence[int], guard: CopyGuard | None
) -> list[Rule]:
    """The rules for ``cfg``; ``guard``: the copy guard for ``cfg.max_copy``, None when off."""
    rules: list[Rule] = []
    if guard is not None:
        rules.append(CopyRule(guard, prompt_ids))
    if cfg.no_repeat_ngram_size:
        rules.append(NoRepeatNgramRule(cfg.no_repeat_ngram_size, prompt_ids))
    if cfg.repetition_penalty not in (None, 1.0):
        rules.append(RepetitionPenalty(cfg.repetition_penalty, prompt_ids))
    if cfg.repeat_bias != 1.0:
        rules.append(RepeatBias(cfg.repeat_bias, prompt_ids))
    if cfg.repeat_bars:
        rules.append(BarRepeat(cfg.repeat_bars, cfg.seed, prompt_ids, cfg.repeat_run))
    return rules
