"""The Gradio page: controls, buttons and outputs wired to :mod:`tunesmith.ui.callbacks`.

Nothing here is module-level state: :func:`build_app` creates the generator holder,
the Stop flags and the download folder for one app, and each browser tab keeps its
piece in a ``gr.State``. Generations share one queue slot (``concurrency_id``), so
concurrent users wait their turn instead of fighting over the model's KV cache.
"""

import secrets
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from tunesmith.errors import TunesmithError
from tunesmith.ui import callbacks, params
from tunesmith.ui.audio import to_int16
from tunesmith.ui.callbacks import GeneratorLike, View
from tunesmith.ui.state import Session, StopFlags

NO_EXAMPLE = "(none)"
SCALES = ("", "C:major", "G:major", "D:major", "F:major", "A:minor", "E:minor", "D:minor",
          "D:dorian", "C:major_pentatonic", "A:blues")  # fmt: skip
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
) -> gr.Blocks:
    """The tunesmith web app; ``generator_factory()`` is called once, at the first generation.

    Launch it with ``.queue().launch(server_name="127.0.0.1", max_file_size=MAX_UPLOAD)``.
    """
    holder = _LazyGenerator(generator_factory)
    stops = StopFlags()
    examples = callbacks.list_examples(examples_dir)
    downloads = tempfile.TemporaryDirectory(prefix="tunesmith-ui-")
    out_dir = Path(downloads.name)

    # No telemetry or version check: the app talks to its visitors and nobody else.
    with gr.Blocks(title=title, delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        demo.tunesmith_downloads = downloads  # lives (and is cleaned up) with the app
        session = gr.State(Session())
        gr.Markdown(
            f"# {title}\nContinue a piano piece with a Transformer: upload a MIDI opening "
            "(or none), choose how to search, press **Generate**, then **Extend** to go on."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                upload = gr.File(
                    label="Prompt MIDI (optional, up to 10 MB)",
                    file_types=[".mid", ".midi"],
                    type="filepath",
                    elem_id="upload",
                )
                example = gr.Dropdown(
                    [NO_EXAMPLE, *examples],
                    value=NO_EXAMPLE,
                    label="…or an example opening (an upload takes precedence)",
                    visible=bool(examples),
                    elem_id="example",
                )
                # A text box, not gr.Number: an empty Number shows "0", which would read
                # as "no prompt notes" when it means all of them.
                prompt_notes = gr.Textbox(
                    label="Prompt notes to use (empty = all)",
                    placeholder="all",
                    elem_id="prompt-notes",
                )
                notes = gr.Slider(1, 1024, value=64, step=1, label="New notes", elem_id="notes")
                search = gr.Radio(
                    list(params.SEARCHES), value="top_k", label="Search", elem_id="search"
                )
                with gr.Group(visible=True) as top_k_box:
                    top_k_notes = gr.Slider(1, 64, value=8, step=1, label="top_k_notes")
                    top_k_durations = gr.Slider(1, 32, value=4, step=1, label="top_k_durations")
                    top_k_offset = gr.Slider(0, 16, value=0, step=1, label="top_k_offset")
                with gr.Group(visible=False) as top_p_box:
                    temperature = gr.Slider(0.05, 3.0, value=1.0, step=0.05, label="temperature")
                    top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.01, label="top_p")
                with gr.Group(visible=False) as beam_box:
                    beam_width = gr.Slider(1, 16, value=4, step=1, label="beam_width")
                creativity = gr.Slider(
                    0, 1000, value=0, step=1, label="Creativity (0-1000: fewer rests, denser music)"
                )
                with gr.Row(equal_height=True):
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", scale=3)
                    dice = gr.Button("Random seed", scale=1, size="sm")
                with gr.Accordion("Constraints", open=False):
                    scale = gr.Dropdown(
                        list(SCALES),
                        value="",
                        allow_custom_value=True,
                        label="Scale (e.g. C:major)",
                    )
                    pitch_range = gr.Textbox(label="Pitch range (e.g. 48-84)", placeholder="21-108")
                    max_polyphony = gr.Number(
                        value=0, precision=0, minimum=0, label="Max polyphony (0 = no limit)"
                    )
            with gr.Column(scale=2):
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    extend_btn = gr.Button("Extend", elem_id="extend")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                    undo_btn = gr.Button("Undo", elem_id="undo")
                with gr.Row():
                    summary = gr.Textbox(label="Summary", interactive=False, elem_id="summary")
                    message = gr.Textbox(label="Message", interactive=False, elem_id="message")
                audio = gr.Audio(
                    label="Listen", type="numpy", autoplay=True, interactive=False, elem_id="audio"
                )
                roll = gr.Image(
                    label="Piano roll: prompt grey, new notes orange",
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id="roll",
                )
                midi_file = gr.File(
                    label="Download MIDI", interactive=False, height=90, elem_id="midi"
                )
                params_json = gr.Code(
                    label="Parameters (JSON, for exact replay)",
                    language="json",
                    lines=4,
                    max_lines=18,
                    elem_id="params",
                )

        knobs = {
            "notes": notes, "creativity": creativity, "seed": seed, "top_k_notes": top_k_notes,
            "top_k_durations": top_k_durations, "top_k_offset": top_k_offset,
            "temperature": temperature, "top_p": top_p, "beam_width": beam_width, "scale": scale,
            "pitch_range": pitch_range, "max_polyphony": max_polyphony,
        }  # fmt: skip
        outputs = [session, audio, roll, summary, midi_file, params_json, message]

        def progress_bar(progress: gr.Progress) -> Callable[[int, int], None]:
            def report(done: int, target: int) -> None:
                progress((min(done, target), target), desc="Generating", unit="notes")

            return report

        def run(
            action: Callable[..., tuple[Session, View]], sid: str, *args: Any, **kwargs: Any
        ) -> tuple:
            should_stop = stops.begin(sid)
            try:
                new_session, view = action(*args, should_stop=should_stop, **kwargs)
            finally:
                stops.end(sid)
            if view.message:
                gr.Info(view.message)
            return (new_session, *_outputs(view))

        def knob_params(data: dict) -> dict[str, Any]:
            values = {name: data[component] for name, component in knobs.items()}
            return params.build_params(data[search], **values)

        # Inputs given as a set arrive as one {component: value} dict, which keeps
        # a dozen knobs out of the signatures. Gradio injects `request` and `progress`.
        def on_generate(data: dict, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            try:
                return run(
                    callbacks.generate,
                    request.session_hash,
                    holder.get(),
                    data[session],
                    data[upload],
                    examples.get(data[example]),
                    data[prompt_notes],
                    knob_params(data),
                    out_dir,
                    progress=progress_bar(progress),
                )
            except TunesmithError as err:
                return _failed(data[session], err)

        def on_extend(data: dict, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            try:
                return run(
                    callbacks.extend,
                    request.session_hash,
                    holder.get(),
                    data[session],
                    knob_params(data),
                    out_dir,
                    progress=progress_bar(progress),
                )
            except TunesmithError as err:
                return _failed(data[session], err)

        def on_undo(state: Session) -> tuple:
            try:
                new_session, view = callbacks.undo(state, out_dir)
            except TunesmithError as err:
                return _failed(state, err)
            return (new_session, *_outputs(view))

        def on_stop(request: gr.Request) -> str:
            if stops.request(request.session_hash):
                return "Stopping…"
            return "Nothing is being generated."

        def on_search(name: str) -> tuple:
            return tuple(gr.update(visible=name == s) for s in ("top_k", "top_p", "beam"))

        def on_example(name: str, n_prompt: Any) -> tuple:
            if name == NO_EXAMPLE:
                return gr.skip(), gr.skip()
            # An example replaces the upload; its opening, not the whole piece, is the prompt.
            keep = isinstance(n_prompt, str) and n_prompt.strip()
            return None, n_prompt if keep else str(callbacks.EXAMPLE_OPENING_NOTES)

        # One progress bar, on the roll, rather than an overlay on every output.
        gen_kwargs = {
            "concurrency_limit": 1,
            "concurrency_id": "generation",
            "show_progress_on": [roll],
        }
        generate_inputs = {session, upload, example, prompt_notes, search, *knobs.values()}
        generate_btn.click(on_generate, generate_inputs, outputs, **gen_kwargs)
        extend_btn.click(on_extend, {session, search, *knobs.values()}, outputs, **gen_kwargs)
        undo_btn.click(on_undo, [session], outputs)
        stop_btn.click(on_stop, None, message, queue=False)
        # A fresh seed from the OS; the generation itself stays a function of that seed.
        dice.click(lambda: secrets.randbelow(2**31), None, seed, queue=False)
        search.change(on_search, search, [top_k_box, top_p_box, beam_box], queue=False)
        example.input(on_example, [example, prompt_notes], [upload, prompt_notes], queue=False)
        upload.upload(lambda: NO_EXAMPLE, None, example, queue=False)
    return demo
