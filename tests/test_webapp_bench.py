"""The web part of ``benchmarks.generation``: a real server, concurrent requests, its record.

A tiny random model keeps the generations short; starting the server (importing torch
and Gradio in a fresh process) is most of the time.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # benchmarks/ is a package beside tests/


@pytest.mark.slow  # starts a real server: minutes while the machine is busy
@pytest.mark.timeout(1200)
def test_two_concurrent_requests_give_a_record_and_leave_nothing_behind(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("gradio")
    pytest.importorskip("gradio_client")
    from tunesmith.model import Transformer, preset, save_checkpoint
    from tunesmith.tokenization.pairs import PairTokenizer

    monkeypatch.syspath_prepend(str(ROOT))
    webapp = importlib.import_module("benchmarks.webapp")
    model = tmp_path / "tiny"
    save_checkpoint(model, Transformer(preset("tiny", PairTokenizer().vocab_size)), PairTokenizer())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the server's files go

    run = webapp.web_throughput("torch", requests=2, notes=8, model=model, wait=900)

    assert run.backend == "torch" and len(run.latencies) == 2
    assert all(t > 0 for t in run.latencies) and run.wall == max(run.latencies)
    assert 0 <= run.new_notes <= 2 * 8  # a random model may end a piece early
    assert 0 < run.median <= run.p95 <= run.wall
    assert run.requests_per_second == pytest.approx(2 / run.wall)
    with pytest.raises(ProcessLookupError):
        os.kill(run.server_pid, 0)  # the server is stopped (and reaped)
    assert not list(scratch.iterdir()), "temporary files left behind"
    webapp.print_web_runs([run], notes=8, model="tiny model")
    out = capsys.readouterr().out
    assert "2 concurrent generate requests of 8 notes" in out and "--backend torch" in out


def test_a_server_that_exits_is_started_twice_then_named_in_one_line(tmp_path, monkeypatch):
    pytest.importorskip("gradio_client")
    import subprocess
    import sys

    monkeypatch.syspath_prepend(str(ROOT))
    webapp = importlib.import_module("benchmarks.webapp")
    started = []

    def exits_at_once(backend, port, workdir, model):
        (workdir / "server.log").write_text("Traceback...\nValueError: no localhost\n")
        started.append(port)
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])

    monkeypatch.setattr(webapp, "start_server", exits_at_once)
    with pytest.raises(RuntimeError, match=r"did not serve .*exit code 1\): ValueError: no local"):
        webapp.serve("torch", tmp_path, None, wait=60)
    assert len(started) == 2
