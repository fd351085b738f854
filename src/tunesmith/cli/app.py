"""``tunesmith app``: the web UI in a browser, served on this machine."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

from tunesmith.cli.generate import add_decoding_options, backend_option
from tunesmith.errors import TunesmithError

HELP = """Open tunesmith in a web browser: upload a MIDI opening, generate, listen,
extend, undo and download. Needs the `app` extra (Gradio) and a SoundFont for the
audio (e.g. `apt-get install fluid-soundfont-gm`, or TUNESMITH_SOUNDFONT=FILE).

The server listens on 127.0.0.1 only, unless --host says otherwise."""

EXAMPLES_ENV = "TUNESMITH_EXAMPLES"
MAX_DEFAULT_WORKERS = 4


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="the web UI in a browser", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--examples",
        help=f"folder of MIDI files offered as example openings (default: ${EXAMPLES_ENV}, "
        "else ../shared/datasets/final-fantasy-piano when it exists)",
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="generations decoded at once, one thread each (default: the CPUs, at most "
        f"{MAX_DEFAULT_WORKERS}); more visitors wait their turn in the queue",
    )  # fmt: skip
    add_decoding_options(p, threads=False)
    p.set_defaults(func=run)


def workers_option(workers: int | None) -> int:
    """``--workers``, checked; by default one per CPU, at most MAX_DEFAULT_WORKERS (decoding
    is bound by memory traffic: beyond a few at once, more only share it)."""
    if workers is None:
        return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))
    if workers < 1:
        raise TunesmithError(f"--workers: {workers} must be at least 1")
    return workers


def default_examples() -> Path | None:
    """``$TUNESMITH_EXAMPLES``, else the project's corpus beside the working directory."""
    env = os.environ.get(EXAMPLES_ENV)
    if env:
        return Path(env)
    corpus = Path("..") / "shared" / "datasets" / "final-fantasy-piano"
    return corpus if corpus.is_dir() else None


def check_listen(host: str, port: int) -> None:
    """Refuse, in one line, an address this machine cannot listen on (a port in use, an
    unknown host) before the model loads, rather than in a traceback from the server."""
    if not 0 < port < 65536:
        raise TunesmithError(f"--port: {port} is not a port number (1-65535)")
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        reason = (err.strerror or str(err)).split(" (while attempting")[0]  # the OS's words
        raise TunesmithError(
            f"--host {host} --port {port}: cannot listen there ({reason})"
        ) from None


def run(args: argparse.Namespace) -> int:
    workers = workers_option(args.workers)
    check_listen(args.host, args.port)
    try:
        import gradio  # noqa: F401  (only to report a missing install in one line)
    except ImportError:
        print(
            "tunesmith app: error: the web UI needs the `app` extra: "
            "pip install -e '.[app]' (and pip install --no-deps tinysoundfont)",
            file=sys.stderr,
        )
        return 2
    from tunesmith.generation.generator import Generator
    from tunesmith.ui.app import MAX_UPLOAD, build_app

    # Load the model before serving, so a bad --model is a one-line error now,
    # not a message in every visitor's page.
    generator = Generator.from_pretrained(args.model, backend=backend_option(args.backend))
    examples = Path(args.examples) if args.examples else default_examples()
    if examples is not None and not examples.is_dir():
        raise TunesmithError(f"--examples {examples}: no such folder")
    demo = build_app(lambda: generator, examples_dir=examples, workers=workers)
    print(f"tunesmith app: serving on http://{args.host}:{args.port}, {workers} generation(s) "
          "at once (Ctrl+C stops)")  # fmt: skip
    # A service manager stops with SIGTERM, whose default kills the process before
    # any clean-up: turned into Ctrl+C, Gradio closes the server and we return.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.queue(max_size=64).launch(
            server_name=args.host,
            server_port=args.port,
            max_file_size=MAX_UPLOAD,
            share=False,
            show_error=False,
            quiet=True,
        )
    except (OSError, ValueError) as err:  # the port taken meanwhile; Gradio's self-check failed
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TunesmithError(f"could not serve on {args.host}:{args.port}: {first_line}") from None
    finally:
        demo.tunesmith_downloads.cleanup()  # the MIDI files offered for download
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
