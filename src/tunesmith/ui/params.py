"""The generation controls' raw values (Gradio numbers, free text) as Generator parameters."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from tunesmith.errors import BadParameterError

MAX_NEW_NOTES = 4096  # a bound for a shared server; the CLI allows more
SEARCHES = ("greedy", "top_k", "top_p", "beam")
# The knobs each search reads; the others are left at the Generator's defaults so
# a stale hidden value cannot make an otherwise valid request fail.
SEARCH_KNOBS = MappingProxyType(
    {
        "greedy": (),
        "top_k": ("top_k_notes", "top_k_durations", "top_k_offset"),
        "top_p": ("temperature", "top_p"),
        "beam": ("beam_width",),
    }
)


def _whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; Gradio numbers arrive as floats."""
    if value is None or value == "":
        raise BadParameterError(f"{name}: a number is needed")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadParameterError(f"{name}: {value!r} is not a number") from None
    if not number.is_integer():
        raise BadParameterError(f"{name}: {value} is not a whole number")
    if number < low or (high is not None and number > high):
        bound = f"{low}-{high}" if high is not None else f"at least {low}"
        raise BadParameterError(f"{name}: {int(number)} is outside {bound}")
    return int(number)


def _real(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadParameterError(f"{name}: {value!r} is not a number") from None


def _text(value: str | None) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def build_params(
    search: str,
    notes: Any,
    creativity: Any = 0,
    seed: Any = 0,
    top_k_notes: Any = 8,
    top_k_durations: Any = 4,
    top_k_offset: Any = 0,
    temperature: Any = 1.0,
    top_p: Any = 0.9,
    beam_width: Any = 4,
    scale: str | None = None,
    pitch_range: str | None = None,
    max_polyphony: Any = None,
) -> dict[str, Any]:
    """The Generator's keyword parameters from the controls' raw values.

    Only the chosen search's knobs are passed. Empty scale, pitch range and
    polyphony (or a polyphony of 0) mean no constraint. Range checks that need the
    model (an unknown scale, a contradicting offset) are the Generator's.
    """
    if search not in SEARCHES:
        raise BadParameterError(
            f"search: unknown search {search!r} (choose from {', '.join(SEARCHES)})"
        )
    knobs: dict[str, Any] = {
        "top_k_notes": lambda: _whole("top_k_notes", top_k_notes, 1),
        "top_k_durations": lambda: _whole("top_k_durations", top_k_durations, 1),
        "top_k_offset": lambda: _whole("top_k_offset", top_k_offset, 0),
        "temperature": lambda: _real("temperature", temperature),
        "top_p": lambda: _real("top_p", top_p),
        "beam_width": lambda: _whole("beam_width", beam_width, 1, 64),
    }
    params: dict[str, Any] = {
        "search": search,
        "notes": _whole("new notes", notes, 1, MAX_NEW_NOTES),
        "creativity": _whole("creativity", creativity, 0, 1000),
        "seed": _whole("seed", seed, 0, 2**63 - 1),
        "scale": _text(scale),
        "pitch_range": _text(pitch_range),
    }
    for knob in SEARCH_KNOBS[search]:
        params[knob] = knobs[knob]()
    if max_polyphony in (None, "") or float(_real("max polyphony", max_polyphony)) == 0:
        params["max_polyphony"] = None
    else:
        params["max_polyphony"] = _whole("max polyphony", max_polyphony, 1)
    return params


def parse_prompt_notes(value: Any) -> int | None:
    """The "prompt notes" field: empty means all of the prompt's notes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _whole("prompt notes", value, 0)
