"""The generation controls, derived from ``GenerationConfig``'s knobs, and their values as a config.

What a control is (slider, number, dropdown...), its range, label and the searches that
show it all come from the field's :class:`~tunesmith.generation.knobs.Knob`; this module
only translates between Gradio's raw values (floats for whole numbers, free text) and
typed field values. Gradio itself is imported by :mod:`tunesmith.ui.app` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.errors import BadParameterError
from tunesmith.generation.config import GenerationConfig, knobs
from tunesmith.generation.knobs import Knob


@dataclass(frozen=True)
class ControlSpec:
    """One control of the page: what ``tunesmith.ui.app`` needs to build it."""

    name: str
    kind: str  # "slider", "number", "radio", "dropdown", "text", "checkbox"
    label: str
    value: Any
    low: float | None = None
    high: float | None = None
    step: float = 1
    choices: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()


def control_specs() -> list[ControlSpec]:
    """A spec per knob the UI shows, in the config's field order."""
    defaults = GenerationConfig().to_dict()
    specs = []
    for name, k in knobs().items():
        if k.ui is None:
            continue
        value = defaults[name] if defaults[name] is not None else k.ui_off
        low = k.low if k.low is None or not k.low_open else k.low + k.ui_step  # low refused
        low = k.ui_low if k.ui_low is not None else low  # room for the "default" value
        specs.append(
            ControlSpec(
                name=name,
                kind=k.ui,
                label=k.ui_label or name,
                value=value,
                low=low,
                high=k.ui_high if k.ui_high is not None else k.high,
                step=k.ui_step,
                choices=k.choices or k.suggestions,
                searches=k.searches,
            )  # fmt: skip
        )
    return specs


def config_from_controls(values: dict[str, Any]) -> GenerationConfig:
    """A config from the controls' raw values (by field name).

    Knobs the chosen search does not read keep their defaults, so a stale hidden
    value cannot make an otherwise valid request fail. Empty text, or a number
    control's "off" value (0 for max polyphony), means no constraint.
    """
    search = values.get("search")
    all_knobs = knobs()
    params: dict[str, Any] = {"search": search}
    for name, k in all_knobs.items():
        if k.ui is None or name == "search" or name not in values:
            continue
        if search in all_knobs["search"].choices and search not in k.searches:
            continue
        params[name] = ui_value(name, k, values[name])
    return GenerationConfig(**params)


def ui_value(name: str, k: Knob, raw: Any) -> Any:
    """The field value of a control's raw value; slider knobs stay within the slider."""
    if (
        raw is None
        or (isinstance(raw, str) and not raw.strip())
        or (k.ui_off is not None and raw == k.ui_off)
    ):
        if k.optional:
            return None
        raise BadParameterError("a value is needed", field=name)
    if k.kind is str:
        return str(raw).strip()
    if k.kind is int:
        value: Any = _whole(name, raw)
    elif k.kind is float:
        value = _real(name, raw)
    else:
        value = raw
    if k.ui == "slider" and k.ui_high is not None and value > k.ui_high:
        raise BadParameterError(f"{value} is over this page's limit of {k.ui_high}", field=name)
    return value


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise BadParameterError(f"{value!r} is not a number", field=name)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadParameterError(f"{value!r} is not a number", field=name) from None


def _whole(name: str, value: Any) -> int:
    """``value`` as an int; Gradio numbers arrive as floats."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _real(name, value)
    if not number.is_integer():
        raise BadParameterError(f"{value} is not a whole number", field=name)
    return int(number)


def parse_prompt_notes(value: Any) -> int | None:
    """The "prompt notes" field: empty means all of the prompt's notes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _whole("prompt_notes", value)
    if number < 0:
        raise BadParameterError(f"must be 0 or more, not {number}", field="prompt_notes")
    return number
