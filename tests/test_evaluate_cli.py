"""``tunesmith evaluate`` end to end on a tiny random model, its parts, and its bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import melody, write_midi
from tunesmith.cli.main import main
from tunesmith.evaluation.corpus import build_training_index, open_corpus
from tunesmith.evaluation.loss import evaluate_loss, file_windows
from tunesmith.evaluation.memorisation import INDEX_FILE, load_checkpoint_index
from tunesmith.evaluation.metrics import SCALAR_METRICS
from tunesmith.evaluation.report import EvalSettings, real_segments, rebase, run_evaluation
from tunesmith.model.checkpoint import save_checkpoint
from tunesmith.model.config import preset
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization.midi_io import save_midi, score_from_grid
from tunesmith.tokenization.pairs import PairTokenizer


def write_folder(folder: Path, n_files: int, seed: int = 0, notes: int = 90) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_files):
        steps = np.sort(rng.integers(0, 3 * notes, notes))
        grid = np.stack([steps, rng.integers(48, 84, notes), rng.integers(1, 8, notes)], axis=1)
        save_midi(score_from_grid(grid), folder / f"piece{i}.mid")
    return folder


def write_checkpoint(path: Path, data: dict | None) -> Path:
    tok = PairTokenizer()
    torch.manual_seed(0)
    model = Transformer(preset("tiny", tok.vocab_size), pad_id=tok.pad_id)
    return save_checkpoint(path, model, tok, extra={"train": None, "data": data})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    midi = write_folder(root / "midi", 8)
    ckpt = write_checkpoint(root / "ckpt", {"source": str(midi.resolve()), "cache": None})
    return {"root": root, "midi": midi, "ckpt": ckpt}


ARGS = ["--samples", "2", "--notes", "20", "--prompt-notes", "8", "--train-openings", "1"]


def test_full_report(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = setup["root"] / "report"
    assert main(["evaluate", "--model", str(setup["ckpt"]), *ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test  loss" in printed and "top_p" in printed and "longest run" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["loss"]) == {"test", "val"}
    for r in report["loss"].values():
        assert r["tokens"] > 0 and r["perplexity"] == pytest.approx(math.exp(r["loss"]))
    # greedy and beam: 1 piece from nothing + 1 per test file (1 here) + 1 per training
    # opening asked for; top_k and top_p: 2 + 2 + 1.
    counts = {
        s: sum(p["search"] == s for p in report["pieces"])
        for s in ("greedy", "top_k", "top_p", "beam")
    }
    assert counts == {"greedy": 3, "top_k": 5, "top_p": 5, "beam": 3}
    assert {p["start"] for p in report["pieces"]} == {"nothing", "test_opening", "train_opening"}
    train_prompts = {p["prompt_file"] for p in report["pieces"] if p["start"] == "train_opening"}
    assert train_prompts <= set(open_corpus(setup["midi"], PairTokenizer()).files["train"])
    for p in report["pieces"]:
        assert (out / p["midi"]).is_file()
        assert p["memorisation_text"].startswith("longest copied run:")
    assert set(report["metrics"]["all"]) >= {
        "pitch_class_entropy",
        "groove_consistency",
        "duration_histogram",
        "repeated_bar_rate",
        "bass_share",
        "long_note_share",
    }
    for name in report["plots"]["metrics"].values():
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert len(report["plots"]["pianorolls"]) == 12  # one per search method and kind of start
    md = (out / "report.md").read_text()
    assert "## Memorisation" in md and "metric_polyphony.png" in md
    assert "## Quality bar" in md and "## Per setting" in md
    # The scale of the overlap: real training excerpts and openings against the held-out ones.
    ref = report["metrics"]["reference"]
    assert ref["excerpts"]["pieces"] == 2 and 0 < ref["excerpts"]["mean"] <= 1
    assert "For scale, the mean KDE overlap of real music" in md
    assert "For scale, the mean KDE overlap of real music" in printed
    # Pieces from nothing are also compared with real held-out openings (they are openings).
    summary = report["settings_summary"]
    for name, setting in summary.items():
        assert ("vs_openings" in setting) == (setting["start"] == "nothing"), name
    vs = summary["top_k/nothing"]["vs_openings"]
    assert vs["openings"] >= 1 and 0 < vs["mean_overlap"] <= 1
    for text in (md, printed):
        assert "Against the openings of the" in text and "top_k/nothing " in text


def test_report_has_the_quality_bar_per_setting(setup: dict[str, Path]) -> None:
    settings = EvalSettings(samples=2, notes=20, prompt_notes=8, train_openings=1, pianorolls=False)
    logged: list[str] = []
    report = run_evaluation(
        setup["ckpt"], setup["root"] / "report-bar", settings=settings, log=logged.append
    )
    n = len(report["pieces"])
    assert f"generating {n} pieces of 20 new notes" in logged
    assert [m.split()[0] for m in logged if m.startswith("[")] == [
        f"[{k}/{n}]" for k in range(1, n + 1)
    ]
    summary = report["settings_summary"]
    assert len(summary) == 12  # 4 search methods x 3 kinds of start
    for name, s in summary.items():
        pieces = [p for p in report["pieces"] if p["setting"] == name]
        assert s["pieces"] == len(pieces)
        assert s["min_pitch_classes"] == min(p["metrics"]["n_pitch_classes"] for p in pieces)
        assert s["min_pitch_range"] == min(p["metrics"]["pitch_range"] for p in pieces)
        rates = [p["metrics"]["repeated_bar_rate"] for p in pieces]
        assert s["repeated_bar_rate"] == pytest.approx(np.mean(rates))
        assert s["longest_copy"] == max(p["memorisation"]["length_notes"] for p in pieces)
        overlaps = [v for k, v in s["overlaps"].items() if k in SCALAR_METRICS and v is not None]
        assert s["mean_overlap"] == pytest.approx(np.mean(overlaps))
        assert s["lowest_overlap"] == min(overlaps)
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["test loss (nats/token)"]["passed"] is False  # a random model
    assert "top_k/nothing: mean repeated-bar rate" in checks
    assert "beam/test_opening (width 4): fewest pitch classes in a piece" in checks
    assert not any("train_opening" in c for c in checks)  # those count for copying only
    assert report["memorisation"]["by_setting"]["top_p/train_opening"] >= 0
    assert report["metrics"]["real_segments"] == report["metrics"]["real_texture"]["pieces"]


def test_rejected_files_are_listed(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_folder(setup["root"] / "with-bad", 8)
    (data / "garbage.mid").write_bytes(b"not a MIDI file")
    (data / "sub").mkdir()
    write_midi(data / "sub" / "drums.mid", melody(16), drum_tracks=(0,))
    out = setup["root"] / "report-rejects"
    argv = ["--model", str(setup["ckpt"]), "--data", str(data), "--searches", "top_k"]
    argv += ["--samples", "1", "--notes", "12", "--train-openings", "0", "--out", str(out)]
    assert main(["evaluate", *argv]) == 0
    printed = capsys.readouterr().out
    rejected = json.loads((out / "report.json").read_text())["data"]["rejected"]
    assert [r["file"] for r in rejected] == ["garbage.mid", "sub/drums.mid"]
    assert all(r["reason"] for r in rejected)
    assert "rejected 2 file(s)" in printed
    for r in rejected:
        assert f"  {r['file']}: {r['reason']}" in printed
    assert "garbage.mid" in (out / "report.md").read_text()

    from tunesmith.data.prepare import prepare  # a token cache lists what prepare rejected

    cache = setup["root"] / "cache-with-bad"
    prepare(data, cache, progress=False, workers=1)
    assert open_corpus(cache, PairTokenizer()).rejected == [
        (r["file"], r["reason"]) for r in rejected
    ]


def test_token_cache_gives_the_same_loss_as_its_folder(setup: dict[str, Path]) -> None:
    from tunesmith.data.prepare import prepare

    cache = setup["root"] / "cache"
    prepare(setup["midi"], cache, progress=False, workers=1)
    tok = PairTokenizer()
    a, b = open_corpus(cache, tok), open_corpus(setup["midi"], tok)
    assert a.files == b.files
    for split in ("train", "val", "test"):
        assert all((x == y).all() for x, y in zip(a.ids[split], b.ids[split], strict=True))
    out = setup["root"] / "report-cache"
    settings = EvalSettings(
        samples=1, notes=12, prompt_notes=4, searches=("top_k",), pianorolls=False, train_openings=0
    )
    report = run_evaluation(setup["ckpt"], out, data=cache, settings=settings)
    assert report["data"]["description"].startswith("token cache")
    assert len(report["pieces"]) == 2


def test_a_carried_index_is_used(setup: dict[str, Path]) -> None:
    ckpt = write_checkpoint(
        setup["root"] / "carrying", {"source": str(setup["midi"]), "cache": None}
    )
    index = build_training_index(setup["midi"], PairTokenizer())
    index.save(ckpt / INDEX_FILE)
    assert (
        load_checkpoint_index(ckpt).names
        == index.names
        == open_corpus(setup["midi"], PairTokenizer()).files["train"]
    )
    settings = EvalSettings(
        samples=1, notes=8, prompt_notes=4, searches=("greedy",), pianorolls=False, train_openings=0
    )
    report = run_evaluation(ckpt, setup["root"] / "report-carried", settings=settings)
    assert report["memorisation"]["index"].startswith("the index carried by the checkpoint")
    assert load_checkpoint_index(setup["root"]) is None


def test_loss_counts_every_token_once_and_matches_the_model() -> None:
    files = [np.arange(4, 40), np.arange(10, 200) % 290 + 4]
    windows = file_windows(files, seq_len=32, pad_id=0, eos_id=2)
    targets = windows[:, 1:]
    assert (targets != 0).sum() == sum(len(f) for f in files)  # ids + EOS, minus the first of each
    tok = PairTokenizer()
    torch.manual_seed(1)
    model = Transformer(preset("tiny", tok.vocab_size), pad_id=tok.pad_id).eval()
    short = [np.arange(5, 50)]
    result = evaluate_loss(model, short, tok.pad_id, tok.eos_id)
    ids = torch.from_numpy(np.append(short[0], tok.eos_id))[None]
    with torch.no_grad():
        _, expected = model(ids[:, :-1], ids[:, 1:])
    assert result.loss == pytest.approx(float(expected), rel=1e-5)
    assert result.tokens == 45 and 0 <= result.accuracy <= 1


def test_uniform_model_has_perplexity_of_the_vocabulary() -> None:
    class Uniform(torch.nn.Module):
        cfg = type("Cfg", (), {"context": 16})()

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, None]:
            return torch.zeros(*ids.shape, 50) + self.w, None

    result = evaluate_loss(Uniform(), [np.arange(1, 40)], pad_id=0, eos_id=2, batch_size=2)
    assert result.perplexity == pytest.approx(50.0)
    assert result.loss == pytest.approx(math.log(50))


def test_segments_are_like_for_like() -> None:
    grid = np.stack([np.arange(100) * 2 + 37, np.full(100, 60), np.full(100, 2)], axis=1)
    segs = real_segments([grid, grid[:10]], notes=30, per_file=2)
    assert [len(s) for s in segs] == [30, 30]  # a file shorter than an excerpt gives none
    assert segs[0][0, 0] == 37 - 32  # moved by whole bars: the beat phase stays
    assert rebase(np.zeros((0, 3))).shape == (0, 3)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_and_exit_2(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, ckpt = setup["root"], str(setup["ckpt"])
    out = str(root / "bad-report")
    assert "--samples: must be at least 1" in _error(
        ["--model", ckpt, "--samples", "0", "--out", out], capsys
    )
    assert "--notes" in _error(["--model", ckpt, "--notes", "-1", "--out", out], capsys)
    (root / "empty").mkdir()
    assert "no .mid or .midi files" in _error(
        ["--model", ckpt, "--data", str(root / "empty"), "--out", out], capsys
    )
    assert "no such data folder" in _error(
        ["--model", ckpt, "--data", str(root / "nope"), "--out", out], capsys
    )
    two = write_folder(root / "two", 2)
    assert "--notes: no held-out file" in _error(
        ["--model", ckpt, "--notes", "5000", "--out", out], capsys
    )
    assert "--searches: choose from" in _error(
        ["--model", ckpt, "--searches", "top_k,sideways", "--out", out], capsys
    )
    assert "--train-openings" in _error(
        ["--model", ckpt, "--train-openings", "-1", "--out", out], capsys
    )
    assert "--threads: must be between 1 and 256, not 0" in _error(
        ["--model", ckpt, "--threads", "0", "--out", out], capsys
    )
    assert "no test or val files" in _error(
        ["--model", ckpt, "--data", str(two), "--out", out], capsys
    )
    gone = write_checkpoint(
        root / "gone", {"source": str(root / "deleted"), "cache": str(root / "deleted-cache")}
    )
    assert "is gone; pass --data" in _error(["--model", str(gone), "--out", out], capsys)
    none = write_checkpoint(root / "none", None)
    assert "records no training data; pass --data" in _error(
        ["--model", str(none), "--out", out], capsys
    )
    (root / "file.txt").write_text("x")
    assert "not a folder" in _error(["--model", ckpt, "--out", str(root / "file.txt")], capsys)
    assert "no such checkpoint" in _error(["--model", str(root / "missing"), "--out", out], capsys)
    assert not Path(out).exists()  # nothing written for bad input
