"""The web app under concurrent load: N people press Generate at the same moment.

The real server (``tunesmith app --backend B``) runs in a subprocess on 127.0.0.1 and a
free port; once it answers, one warm-up generation (not counted) pays for what the server
builds on first use, then N ``gradio_client`` clients, one browser session each, ask at
once for ``notes`` new notes each (top-k, distinct seeds, the page's other defaults) from
N threads. A request's latency runs from the burst's start to its answer, so it includes
its wait in the server's queue (the app decodes `--workers` generations at once: by default one
per CPU, at most 4). The server is
stopped (SIGTERM, then SIGKILL after a timeout) and its temporary folder removed in every
case, error or not.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENDPOINT = "/on_click"  # Generate's handler: the first of the page's three on_click
NEW_NOTES = re.compile(r"\+ (\d+) new")  # in the summary: "64 notes (0 prompt + 64 new)"
STOP_SECONDS = 60.0  # the server's clean exit after SIGTERM, before it is killed


@dataclass(frozen=True)
class WebRun:
    """One burst of concurrent generate requests against one backend's server."""

    backend: str
    latencies: list[float]  # seconds, one per request, from the burst's start
    wall: float  # seconds from the burst's start to its last answer
    new_notes: int  # new notes over all requests
    server_pid: int

    @property
    def median(self) -> float:
        return float(np.median(self.latencies))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.latencies, 95))

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.wall

    @property
    def notes_per_second(self) -> float:
        return self.new_notes / self.wall


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(backend: str, port: int, workdir: Path, model: Path | None) -> subprocess.Popen:
    """``tunesmith app`` in a subprocess, its temporary files and stderr kept in ``workdir``."""
    cmd = [sys.executable, "-m", "tunesmith", "app", "--port", str(port), "--backend", backend]
    if model is not None:
        cmd += ["--model", str(model)]
    # Gradio's cached outputs and the app's download folder go to workdir, removed after.
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(workdir),
           "GRADIO_TEMP_DIR": str(workdir / "gradio")}  # fmt: skip
    with open(workdir / "server.log", "wb") as log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (the app cleans up and exits), SIGKILL if it has not after STOP_SECONDS."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_failure(proc: subprocess.Popen, workdir: Path, url: str) -> RuntimeError:
    """Why the server did not answer: its exit code and the last line it wrote."""
    lines = (workdir / "server.log").read_text(errors="replace").strip().splitlines()
    said = f": {lines[-1]}" if lines else ""
    return RuntimeError(f"the app did not serve at {url} (exit code {proc.poll()}){said}")


def connect(url: str, proc: subprocess.Popen, workdir: Path, wait: float) -> Any:
    """A ``gradio_client`` client (a browser session of its own) once the server answers."""
    import httpx
    from gradio_client import Client

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return Client(url, verbose=False, download_files=False, analytics_enabled=False)
        except httpx.HTTPError:  # not serving yet: the model loads first
            time.sleep(0.5)
    raise server_failure(proc, workdir, url)


def serve(
    backend: str, workdir: Path, model: Path | None, wait: float
) -> tuple[subprocess.Popen, str, Any]:
    """A server answering at its url, and a client of it. One that exits before it answers
    is started once more: Gradio's launch gives up when its own 3-s request to the page
    times out, which happens on a machine loaded far beyond its cores."""
    for attempt in range(2):
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = start_server(backend, port, workdir, model)
        try:
            return proc, url, connect(url, proc, workdir, wait)
        except BaseException as err:
            exited = proc.poll() is not None  # rather than still loading when time ran out
            stop_server(proc)
            if attempt == 1 or not exited or not isinstance(err, RuntimeError):
                raise
    raise AssertionError("unreachable")


def generate_arguments(client: Any, notes: int) -> tuple[dict[str, Any], str]:
    """Generate's arguments by parameter name (no prompt, no bars chosen, top-k, ``notes``
    new notes, the page's defaults for the rest) and the name of its seed parameter."""
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = {p["label"]: p["parameter_name"] for p in params[ENDPOINT]["parameters"]}
    by_label = {"Prompt notes to use (empty = all)": "", "First bar": None, "Last bar": None,
                "Search": "top_k", "New notes": notes}  # fmt: skip
    kwargs = {names[label]: value for label, value in by_label.items()}
    kwargs[next(n for label, n in names.items() if label.startswith("Prompt MIDI"))] = None
    return kwargs, names["Seed"]


def one_request(client: Any, kwargs: dict[str, Any], seed: dict[str, int]) -> tuple[float, int]:
    """Generate once; the time it answered (perf_counter) and its number of new notes."""
    out = client.predict(**kwargs, **seed, api_name=ENDPOINT)
    finished = time.perf_counter()
    found = [m for o in out if isinstance(o, str) and (m := NEW_NOTES.search(o))]
    if not found:  # the page shows an error message instead of a summary
        raise RuntimeError(f"generation with {seed} failed: {out[-1]!r}")
    return finished, int(found[0].group(1))


def burst(clients: list[Any], kwargs: dict[str, Any], seed_param: str) -> tuple[list[float], int]:
    """Every client generates at once (seeds 1..N); latencies (s) and new notes in all."""
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        start = time.perf_counter()
        jobs = [pool.submit(one_request, client, kwargs, {seed_param: i + 1})
                for i, client in enumerate(clients)]  # fmt: skip
        answers = [job.result() for job in jobs]
    return [finished - start for finished, _ in answers], sum(n for _, n in answers)


def web_throughput(
    backend: str, requests: int = 16, notes: int = 64, model: Path | None = None,
    wait: float = 900.0,
) -> WebRun:  # fmt: skip
    """Serve the app with ``backend`` and time ``requests`` concurrent generations."""
    with tempfile.TemporaryDirectory(prefix="tunesmith-webbench-") as tmp:
        workdir = Path(tmp)
        proc, url, first = serve(backend, workdir, model, wait)
        clients = [first]
        try:
            kwargs, seed_param = generate_arguments(clients[0], notes)
            one_request(clients[0], kwargs, {seed_param: 0})  # warm-up, not counted
            clients += [connect(url, proc, workdir, wait) for _ in range(requests - 1)]
            latencies, new_notes = burst(clients, kwargs, seed_param)
        finally:
            for client in clients:  # their heartbeat streams would hold the server open
                client.close()
            stop_server(proc)
    return WebRun(backend, latencies, max(latencies), new_notes, proc.pid)


def print_web_runs(runs: list[WebRun], notes: int, model: str = "bundled model") -> None:
    """A line per backend, then the fast backend's throughput over the reference's."""
    n = len(runs[0].latencies)
    print(f"web app, {n} concurrent generate requests of {notes} notes (top-k), {model}:")
    for run in runs:
        print(
            f"  --backend {run.backend}: median {run.median:.2f} s, 95th percentile "
            f"{run.p95:.2f} s, wall {run.wall:.2f} s, {run.requests_per_second:.2f} requests/s, "
            f"{run.notes_per_second:.1f} new notes/s"
        )
    by_name = {run.backend: run for run in runs}
    if "torch" in by_name and "onnx" in by_name:
        ratio = by_name["onnx"].notes_per_second / by_name["torch"].notes_per_second
        print(f"  throughput onnx / torch: **{ratio:.2f}x**")


def main() -> None:
    """The web part of ``benchmarks.generation`` alone."""
    import argparse

    from tunesmith.model.backend_names import onnxruntime_available

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=16, help="concurrent requests (default 16)")
    ap.add_argument("--notes", type=int, default=64, help="new notes a request (default 64)")
    args = ap.parse_args()
    if args.requests < 1 or args.notes < 1:
        ap.error("--requests and --notes must be 1 or more")
    backends = ("torch", "onnx") if onnxruntime_available() else ("torch",)
    print_web_runs([web_throughput(b, args.requests, args.notes) for b in backends], args.notes)


if __name__ == "__main__":
    main()
