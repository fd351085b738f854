"""``tunesmith app``: arguments, one-line errors, and a real server from the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import assert_one_line_error, cli_exit_code
from tunesmith.cli.main import main


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["app", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--model" in out and "--host" in out and "--port" in out and "127.0.0.1" in out
    assert "--workers" in out


def test_workers_below_one_is_a_one_line_error(capsys):
    assert_one_line_error(capsys, cli_exit_code(["app", "--workers", "0"]), "--workers")


def test_workers_set_how_many_generations_the_app_decodes_at_once():
    pytest.importorskip("gradio")
    from tunesmith.cli.app import workers_option
    from tunesmith.ui.app import build_app

    fns = build_app(lambda: None, workers=3).fns.values()
    limits = {f.concurrency_limit for f in fns if f.concurrency_id == "generation"}
    assert limits == {3}
    assert 1 <= workers_option(None) <= min(os.cpu_count() or 1, 4)


def test_missing_gradio_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail
    assert main(["app"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "`app` extra" in err and "pip install" in err


def test_a_port_in_use_and_an_unknown_host_are_one_line_errors(capsys):
    pytest.importorskip("gradio")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert_one_line_error(capsys, cli_exit_code(["app", "--port", str(port)]), f"{port}")
    code = cli_exit_code(["app", "--host", "no-such-host.invalid", "--port", "7861"])
    assert_one_line_error(capsys, code, "no-such-host.invalid")


def test_bad_port_and_bad_model_are_one_line_errors(tmp_path, capsys):
    pytest.importorskip("gradio")
    assert main(["app", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["app", "--model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nowhere" in err


def test_serves_the_page_on_loopback(tmp_path):
    pytest.importorskip("gradio")
    from tunesmith.model import Transformer, preset, save_checkpoint
    from tunesmith.tokenization.pairs import PairTokenizer

    model = tmp_path / "tiny"
    save_checkpoint(model, Transformer(preset("tiny", PairTokenizer().vocab_size)), PairTokenizer())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "tunesmith", "app", "--model", str(model), "--port", str(port)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        deadline, page = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    page = resp.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None, (
            f"no page; the app said: {proc.stdout.read() if proc.poll() is not None else ''}"
        )
        assert "tunesmith" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow  # starts a real server: tens of seconds
def test_sigterm_removes_the_download_folder(tmp_path):
    pytest.importorskip("gradio")
    from tunesmith.model import Transformer, preset, save_checkpoint
    from tunesmith.tokenization.pairs import PairTokenizer

    model = tmp_path / "tiny"
    save_checkpoint(model, Transformer(preset("tiny", PairTokenizer().vocab_size)), PairTokenizer())
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(temp)}
    cmd = [sys.executable, "-m", "tunesmith", "app", "--model", str(model), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline, served = time.monotonic() + 400, False
        while time.monotonic() < deadline and proc.poll() is None and not served:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                    served = True
            except OSError:
                time.sleep(0.5)
        assert served, "the app did not serve"
        assert list(temp.glob("tunesmith-ui-*")), "no download folder while serving"
    finally:
        proc.terminate()  # SIGTERM
        code = proc.wait(timeout=60)
    # It exits by itself (0, or 130 when the interrupt lands outside Gradio's serving
    # loop), never killed by the signal, and cleans up either way.
    assert code in (0, 130)
    assert not list(temp.glob("tunesmith-ui-*"))
