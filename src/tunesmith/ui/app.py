"""The Gradio page: controls, buttons and outputs wired to :mod:`tunesmith.ui.callbacks`.

Nothing here is module-level state: :func:`build_app` creates the generator holder,
the Stop flags and the download folder for one app, and each browser tab keeps its
piece in a ``gr.State``. Generations share ``workers`` queue slots (one ``concurrency_id``):
each decodes on its own thread with its own KV cache, and visitors beyond them wait their
turn instead of sharing the CPU's cores ever more thinly.
"""

import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from tunesmith.errors import TunesmithError
from tunesmith.generation.knobs import SEARCHES
from tunesmith.ui import callbacks
from tunesmith.ui.audio import to_int16
from tunesmith.ui.callbacks import GeneratorLike, RunHooks, View
from tunesmith.ui.params import ControlSpec, config_from_controls, control_specs
from tunesmith.ui.spans import RollOptions
from tunesmith.ui.state import Session, StopFlags

NO_EXAMPLE = "(none)"
MAX_UPLOAD = callbacks.MAX_UPLOAD_BYTES  # launch(max_file_size=...): Gradio refuses bigger uploads


class _LazyGenerator:
    """Builds the generator on first use, once, even when two requests race for it."""

    def __init__(self, factory: Callable[[], GeneratorLike]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._generator: GeneratorLike | None = None

    def get(self) -> GeneratorLike:
        with self._lock:
            if self._generator is None:
                self._generator = self._factory()
            return self._generator


def _outputs(view: View) -> tuple[Any, ...]:
    """A View as the values of (audio, roll, summary, midi file, json, message)."""
    audio = None if view.audio is None else (view.audio[0], to_int16(view.audio[1]))
    return audio, view.roll, view.summary, view.midi_path, view.params_json, view.message


def _failed(state: Session, err: TunesmithError) -> tuple[Any, ...]:
    """Keep the session and every output as they are; show the message (toast and text box)."""
    gr.Warning(str(err))
    return (state, *(gr.skip(),) * 5, str(err))


def build_app(
    generator_factory: Callable[[], GeneratorLike],
    examples_dir: str | Path | None = None,
    title: str = "tunesmith",
    workers: int = 1,
) -> gr.Blocks:
    """The tunesmith web app; ``generator_factory()`` is called once, at the first generation.
    ``workers``: generations decoded at once (the generator must allow it from threads).

    Launch it with ``.queue().launch(server_name="127.0.0.1", max_file_size=MAX_UPLOAD)``.
    """
    examples = callbacks.list_examples(examples_dir)
    downloads = tempfile.TemporaryDirectory(prefix="tunesmith-ui-")
    # No telemetry or version check: the app talks to its visitors and nobody else.
    with gr.Blocks(title=title, delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        demo.tunesmith_downloads = downloads  # lives (and is cleaned up) with the app
        gr.Markdown(
            f"# {title}\nContinue a piano piece with a Transformer: upload a MIDI opening "
            "(or none), choose how to search, press **Generate**, then **Extend** to go on, "
            "or choose bars beside the piano roll and **Regenerate bars**."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                page = _inputs(examples)
            with gr.Column(scale=2):
                page.update(_outputs_layout())
        wiring = Wiring(_LazyGenerator(generator_factory), StopFlags(), examples,
                        Path(downloads.name), page, workers)  # fmt: skip
        wiring.connect()
    return demo


def _inputs(examples: dict[str, Path]) -> dict[str, Any]:
    """The left column: prompt, then one control per knob (grouped by search), then dice."""
    page: dict[str, Any] = {"session": gr.State(Session())}
    page["upload"] = gr.File(
        label="Prompt MIDI (optional, up to 10 MB)", file_types=[".mid", ".midi"],
        type="filepath", elem_id="upload",
    )  # fmt: skip
    page["example"] = gr.Dropdown(
        [NO_EXAMPLE, *examples], value=NO_EXAMPLE, visible=bool(examples), elem_id="example",
        label="…or an example opening (an upload takes precedence)",
    )  # fmt: skip
    # A text box, not gr.Number: an empty Number shows "0", which would read
    # as "no prompt notes" when it means all of them.
    page["prompt_notes"] = gr.Textbox(
        label="Prompt notes to use (empty = all)", placeholder="all", elem_id="prompt-notes"
    )
    for spec in control_specs():  # field order: search, length, each search's knobs, rules
        page[spec.name] = _control(spec)
    page["dice"] = gr.Button("Random seed", size="sm")
    return page


def _control(spec: ControlSpec) -> Any:
    """The Gradio component of one knob, as its spec says."""
    common = {
        "label": spec.label,
        "value": spec.value,
        "elem_id": spec.name.replace("_", "-"),
        "visible": "top_k" in spec.searches,  # the default search's knobs show at first
    }
    if spec.kind == "slider":
        return gr.Slider(spec.low, spec.high, step=spec.step, **common)
    if spec.kind == "radio":
        return gr.Radio(list(spec.choices), **common)
    if spec.kind == "dropdown":
        return gr.Dropdown(["", *spec.choices], allow_custom_value=True, **common)
    if spec.kind == "number":
        # 0 (or a negative ui_low) is how some knobs say "none" / "the search's default".
        minimum = min(0.0, spec.low if spec.low is not None else 0.0)
        precision = 0 if float(spec.step).is_integer() else None
        return gr.Number(precision=precision, minimum=minimum, step=spec.step, **common)
    if spec.kind == "checkbox":
        return gr.Checkbox(**common)
    return gr.Textbox(**common)


def _outputs_layout() -> dict[str, Any]:
    """The right column: buttons, summary and message, audio, roll, download, JSON."""
    page: dict[str, Any] = {}
    with gr.Row():
        for name, variant in (("generate", "primary"), ("extend", "secondary"),
                              ("stop", "stop"), ("undo", "secondary")):  # fmt: skip
            page[name] = gr.Button(name.capitalize(), variant=variant, elem_id=name)
    with gr.Row():
        page["summary"] = gr.Textbox(label="Summary", interactive=False, elem_id="summary")
        page["message"] = gr.Textbox(label="Message", interactive=False, elem_id="message")
    page["audio"] = gr.Audio(
        label="Listen", type="numpy", autoplay=True, interactive=False, elem_id="audio"
    )
    with gr.Row(equal_height=False):
        page["roll"] = gr.Image(
            # A short label: Gradio lays it over the image's top left, where the legend is.
            label="Piano roll",
            type="numpy", format="png", interactive=False, elem_id="roll", scale=5,
        )  # fmt: skip
        page.update(_span_controls())
    page["midi"] = gr.File(label="Download MIDI", interactive=False, height=90, elem_id="midi")
    page["params"] = gr.Code(
        label="Parameters (JSON, replay with tunesmith generate --replay)", language="json",
        lines=4, max_lines=18, elem_id="params",
    )  # fmt: skip
    return page


def _span_controls() -> dict[str, Any]:
    """Beside the roll: the bars to regenerate, the button, and the whole-piece toggle."""
    page: dict[str, Any] = {}
    with gr.Column(scale=1, min_width=150):
        # Empty (or 0) means no bars chosen; the roll highlights a span once both make one.
        page["first_bar"] = gr.Number(label="First bar", precision=0, elem_id="first-bar")
        page["last_bar"] = gr.Number(label="Last bar", precision=0, elem_id="last-bar")
        page["regenerate"] = gr.Button("Regenerate bars", variant="secondary", elem_id="regenerate")
        page["whole"] = gr.Checkbox(label="Show whole piece", value=False, elem_id="whole")
    return page


OUTPUTS = ("session", "audio", "roll", "summary", "midi", "params", "message")


@dataclass
class Wiring:
    """The page's event handlers, bound to one app's generator, Stop flags and folder."""

    holder: _LazyGenerator
    stops: StopFlags
    examples: dict[str, Path]
    out_dir: Path
    page: dict[str, Any]
    workers: int = 1

    def knob_components(self) -> dict[str, Any]:
        """The knob controls by field name."""
        return {s.name: self.page[s.name] for s in control_specs()}

    def config(self, data: dict) -> Any:
        """The GenerationConfig of the controls' values (``data``: component -> value)."""
        return config_from_controls({n: data[c] for n, c in self.knob_components().items()})

    def roll(self, data: dict) -> RollOptions:
        """How the roll is to be drawn: the chosen bars and the whole-piece toggle."""
        page = self.page
        return RollOptions(data[page["first_bar"]], data[page["last_bar"]], data[page["whole"]])

    def handler(self, action: str) -> Callable[..., tuple]:
        """The click handler of Generate, Extend or Regenerate bars (each with its own prompt)."""
        page = self.page

        # Inputs given as a set arrive as one {component: value} dict, which keeps
        # a dozen knobs out of the signature. Gradio injects `request` and `progress`.
        def on_click(data: dict, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            state = data[page["session"]]
            should_stop = self.stops.begin(request.session_hash)
            try:
                args = (self.holder.get(), state)
                if action == "generate":
                    example = self.examples.get(data[page["example"]])
                    args += (data[page["upload"]], example, data[page["prompt_notes"]])
                elif action == "regenerate":
                    args += (data[page["first_bar"]], data[page["last_bar"]])
                hooks = RunHooks(should_stop, _progress_bar(progress), self.roll(data))
                new_session, view = getattr(callbacks, action)(
                    *args, self.config(data), self.out_dir, hooks
                )
            except TunesmithError as err:
                return _failed(state, err)
            finally:
                self.stops.end(request.session_hash)
            if view.message:
                gr.Info(view.message)
            return (new_session, *_outputs(view))

        return on_click

    def on_undo(self, data: dict) -> tuple:
        """Go back one version, or say why not."""
        state = data[self.page["session"]]
        try:
            new_session, view = callbacks.undo(state, self.out_dir, roll=self.roll(data))
        except TunesmithError as err:
            return _failed(state, err)
        return (new_session, *_outputs(view))

    def on_roll(self, data: dict) -> Any:
        """Redraw the roll for the chosen bars or the whole-piece toggle."""
        image = callbacks.redraw_roll(data[self.page["session"]], self.roll(data))
        return gr.skip() if image is None else image

    def on_stop(self, request: gr.Request) -> str:
        """Ask this tab's running generation to stop."""
        if self.stops.request(request.session_hash):
            return "Stopping…"
        return "Nothing is being generated."

    def connect(self) -> None:
        """Attach every handler to its button or control."""
        page, knob_inputs = self.page, set(self.knob_components().values())
        outputs = [page[name] for name in OUTPUTS]
        # One set of queue slots for all generations; one progress bar, on the roll.
        slot = {"concurrency_limit": self.workers, "concurrency_id": "generation",
                "show_progress_on": [page["roll"]]}  # fmt: skip
        view = {page[n] for n in ("session", "first_bar", "last_bar", "whole")}
        prompt = view | {page[n] for n in ("upload", "example", "prompt_notes")}
        page["generate"].click(self.handler("generate"), prompt | knob_inputs, outputs, **slot)
        for action in ("extend", "regenerate"):
            page[action].click(self.handler(action), view | knob_inputs, outputs, **slot)
        page["undo"].click(self.on_undo, view, outputs)
        for control in ("first_bar", "last_bar", "whole"):
            page[control].change(self.on_roll, view, page["roll"], queue=False)
        page["stop"].click(self.on_stop, None, page["message"], queue=False)
        # A fresh seed from the OS; the generation itself stays a function of that seed.
        page["dice"].click(lambda: secrets.randbelow(2**31), None, page["seed"], queue=False)
        own = [s for s in control_specs() if set(s.searches) != set(SEARCHES)]
        page["search"].change(
            lambda name: tuple(gr.update(visible=name in s.searches) for s in own),
            page["search"], [page[s.name] for s in own], queue=False,
        )  # fmt: skip
        page["example"].input(_on_example, [page["example"], page["prompt_notes"]],
                              [page["upload"], page["prompt_notes"]], queue=False)  # fmt: skip
        page["upload"].upload(lambda: NO_EXAMPLE, None, page["example"], queue=False)


def _progress_bar(progress: gr.Progress) -> Callable[[int, int], None]:
    def report(done: int, target: int) -> None:
        progress((min(done, target), target), desc="Generating", unit="notes")

    return report


def _on_example(name: str, n_prompt: Any) -> tuple:
    if name == NO_EXAMPLE:
        return gr.skip(), gr.skip()
    # An example replaces the upload; its opening, not the whole piece, is the prompt.
    keep = isinstance(n_prompt, str) and n_prompt.strip()
    return None, n_prompt if keep else str(callbacks.EXAMPLE_OPENING_NOTES)
