"""``tunesmith generate`` as a hostile user runs it: one stderr line, exit 2, no orphan file.

Run in-process through the CLI's ``main(argv)`` so the whole list takes seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import assert_one_line_error, cli_exit_code
from tunesmith.cli.main import main
from tunesmith.model import Transformer, preset, save_checkpoint
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import score_from_grid


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A folder with a tiny checkpoint, broken copies of it, a prompt and traps for --out."""
    root = tmp_path_factory.mktemp("adversarial")
    tok = PairTokenizer()
    torch.manual_seed(0)
    save_checkpoint(root / "ck", Transformer(preset("tiny", tok.vocab_size)), tok)
    _variant(root, "null-model", lambda c: c.__setitem__("model", None))
    _variant(root, "bad-d-ff", lambda c: c["model"].__setitem__("d_ff", 65))
    _variant(root, "huge", lambda c: c["model"].update(d_model=2**20, context=2**30))
    nan = _variant(root, "nan", lambda c: None)
    weights = load_file(str(nan / "model.safetensors"))
    next(iter(weights.values()))[...] = float("nan")
    save_file(weights, str(nan / "model.safetensors"))
    rows = np.array([[0, 60, 4], [4, 62, 4]])
    score_from_grid(rows).dump_midi(str(root / "prompt.mid"))
    (root / "folder.mid").mkdir()
    (root / "side").mkdir()
    (root / "side" / "s.json").mkdir()
    return root


def _variant(root: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    folder = root / name
    shutil.copytree(root / "ck", folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _sidecar(root: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    record = {"tool": "tunesmith generate", "params": {"notes": 5, "seed": 1}}
    edit(record)
    (root / name).write_text(json.dumps(record))
    return str(root / name)


REFUSED = {  # name -> (argv after the model and --out, a word the one line must hold)
    "seed 2**64": (["--seed", str(2**64)], "--seed"),
    "out under /proc": (["--out", "/proc/x.mid"], "/proc/x.mid"),
    "out is a folder": (["--out", "{root}/folder.mid"], "is a folder"),
    "sidecar is a folder": (["--out", "{root}/side/s.mid"], "s.json is a folder"),
    "model null": (["--model", "{root}/null-model"], "null-model"),
    "d_ff mismatch": (["--model", "{root}/bad-d-ff"], "shapes do not match"),
    "huge model": (["--model", "{root}/huge"], "too large"),
    "nan weights": (["--model", "{root}/nan"], "not finite"),
    "notes not a number": (["--notes", "ten"], "--notes"),
    "replay missing params": (["--replay", "missing-params"], "no generation parameters"),
    "replay null params": (["--replay", "null-params"], "no generation parameters"),
    "replay unknown key": (["--replay", "unknown-key"], "volume"),
    "replay wrong type": (["--replay", "wrong-type"], "notes: '5' is not a whole number"),
    "replay huge seed": (["--replay", "huge-seed"], "seed: must be in"),
    "replay prompt gone": (["--replay", "prompt-gone"], "no longer exists"),
    "replay bad prompt_notes": (["--replay", "bad-prompt-notes"], "prompt_notes"),
    "replay not json": (["--replay", "not-json"], "not a generate JSON sidecar"),
    "replay of an upload": (["--replay", "upload"], "give the prompt intro.mid with --prompt"),
    "replay with a missing prompt": (["--replay", "upload", "--prompt", "/no/p.mid"], "--prompt"),
    "replay with a folder prompt": (
        ["--replay", "upload", "--prompt", "{root}"],
        "not a regular file",
    ),
}

SIDECARS = {
    "missing-params": lambda r: r.pop("params"),
    "null-params": lambda r: r.__setitem__("params", None),
    "unknown-key": lambda r: r["params"].__setitem__("volume", 3),
    "wrong-type": lambda r: r["params"].__setitem__("notes", "5"),
    "huge-seed": lambda r: r["params"].__setitem__("seed", 10**30),
    "prompt-gone": lambda r: r.update(prompt_path="/nonexistent/p.mid", prompt_sha256="ab"),
    "bad-prompt-notes": lambda r: r.__setitem__("prompt_notes", "all"),
    "upload": lambda r: r.update(prompt_name="intro.mid", prompt_sha256="ab"),
}


def _argv(root: Path, args: list[str]) -> list[str]:
    args = [a.format(root=root) for a in args]
    if args[0] == "--replay" and args[1] in SIDECARS:
        args[1] = _sidecar(root, args[1] + ".json", SIDECARS[args[1]])
    elif args[0] == "--replay":
        (root / "not.json").write_text("{not json")
        args[1] = str(root / "not.json")
    return ["generate", "--model", str(root / "ck"), "--out", str(root / "o.mid"), *args]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_in_one_line_with_exit_2_and_no_orphan(root, capsys, case):
    args, word = REFUSED[case]
    code = cli_exit_code(_argv(root, args))
    assert_one_line_error(capsys, code, word, root / "o.mid", root / "o.json")


def test_a_tiny_temperature_works_as_greedy(root, tmp_path, capsys):
    outs = {}
    for name, extra in (("tiny", ["--search", "top_p", "--temperature", "1e-300"]),
                        ("greedy", ["--search", "greedy"])):  # fmt: skip
        out = tmp_path / f"{name}.mid"
        argv = ["generate", "--model", str(root / "ck"), "--out", str(out), "--notes", "8",
                "--no-stop-at-eos", *extra]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        outs[name] = out.read_bytes()
    assert outs["tiny"] == outs["greedy"]


def test_no_legal_note_is_the_stop_reason(root, tmp_path, capsys):
    out = tmp_path / "stuck.mid"
    argv = ["generate", "--model", str(root / "ck"), "--out", str(out), "--notes", "16",
            "--pitch-range", "60-60", "--max-repeat", "1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "(no legal note)" in captured.out and "no legal note" in captured.err
    assert json.loads(out.with_suffix(".json").read_text())["stop_reason"] == "no legal note"


def test_a_sidecar_that_cannot_be_written_removes_the_midi(root, tmp_path, capsys, monkeypatch):
    from tunesmith.generation import record

    def fail(*_: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(record, "write_record", fail)
    out = tmp_path / "x.mid"
    assert main(["generate", "--model", str(root / "ck"), "--out", str(out), "--notes", "4"]) == 2
    assert "cannot write" in capsys.readouterr().err and not out.exists()
