"""How a decoding window slides past the model's context: one rule for the torch window
(:class:`~tunesmith.generation.window.CachedWindow`) and the numpy one
(:class:`~tunesmith.generation.fused_window.FusedWindow`)."""

from __future__ import annotations


def default_slide(context: int) -> int:
    """Tokens dropped at each slide: a quarter of the context (at least one)."""
    return max(1, context // 4)


def window_start(length: int, context: int, slide: int) -> int:
    """The first of ``length`` ids the window keeps: all while they fit in the context, else
    the last ``context - slide`` (a slide, or a prompt longer than the context)."""
    return 0 if length <= context else length - (context - slide)
