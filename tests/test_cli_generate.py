"""``tunesmith generate`` as a user runs it: files written, replay, one-line errors with exit 2."""

from __future__ import annotations

import json

import pytest
import torch

from tunesmith.cli.main import main
from tunesmith.model import Transformer, preset, save_checkpoint
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import load_midi, score_from_grid


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "ck"
    save_checkpoint(path, Transformer(preset("tiny", PairTokenizer().vocab_size)), PairTokenizer())
    return path


@pytest.fixture
def prompt_file(tmp_path):
    import numpy as np

    path = tmp_path / "prompt.mid"
    score_from_grid(np.array([[0, 60, 4], [4, 62, 4], [8, 64, 4]]), bpm=100).dump_midi(str(path))
    return path


def test_generate_writes_midi_and_sidecar_and_replays_byte_for_byte(
    tmp_path, model_dir, prompt_file, capsys
):
    out = tmp_path / "song.mid"
    code = main(["generate", "--model", str(model_dir), "--prompt", str(prompt_file), "--notes", "20",
                 "--search", "top_k", "--seed", "5", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["params"]["seed"] == 5 and record["prompt_notes_used"] == 3
    assert record["model_sha256"] and record["prompt_sha256"]
    score = load_midi(out)
    assert score.tempos[0].qpm == pytest.approx(100, abs=0.01)
    again = tmp_path / "again.mid"
    assert main(["generate", "--replay", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_thread_count_changes_the_speed_not_the_piece(tmp_path, model_dir, backend):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    pieces = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads{threads}.mid"
        argv = ["generate", "--model", str(model_dir), "--notes", "24", "--seed", "3",
                "--backend", backend, "--threads", threads, "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
        pieces.append(out.read_bytes())
    assert pieces[0] == pieces[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--search", "beam", "--beam-width", "0"], "--beam-width"),
        (["--creativity", "5000"], "--creativity"),
        (["--notes", "-1"], "--notes"),
        (["--scale", "X:major"], "--scale"),
        (["--top-k-offset", "-2"], "--top-k-offset"),
        (["--prompt", "/nonexistent.mid"], "no such file"),
        (["--model", "/nonexistent"], "no such checkpoint"),
        (["--replay", "/nonexistent.json"], "no such file"),
        (["--threads", "0"], "--threads: must be between 1 and 256, not 0"),
        (["--threads", "257"], "--threads: must be between 1 and 256"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, model_dir, capsys, args, message):
    base = ["generate", "--out", str(tmp_path / "x.mid")]
    if "--model" not in args:
        base += ["--model", str(model_dir)]
    code = main(base + args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.mid").exists()


def test_non_midi_prompt_and_bad_out(tmp_path, model_dir, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not midi")
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--prompt",
                str(bad),
                "--out",
                str(tmp_path / "a.mid"),
            ]
        )
        == 2
    )
    assert "not a MIDI file" in capsys.readouterr().err
    assert main(["generate", "--model", str(model_dir), "--out", str(tmp_path / "a.wav")]) == 2
    assert (
        main(["generate", "--model", str(model_dir), "--out", str(tmp_path / "no" / "a.mid")]) == 2
    )
    assert main(["generate", "--model", str(model_dir)]) == 2


@pytest.mark.parametrize(
    ("argv", "prog"),
    [(["generate", "--bogus"], "tunesmith generate"), (["generate", "--notes", "4", "x"],
     "tunesmith generate"), (["--bogus"], "tunesmith")],
)  # fmt: skip
def test_unknown_argument_exits_2_naming_its_command(capsys, argv, prog):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{prog}: error: unrecognized arguments: {argv[-1]}"]
