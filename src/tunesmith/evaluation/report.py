"""``tunesmith evaluate`` end to end: loss, generated pieces, statistics, copies, report files.

The pieces compared are like for like: the *new* notes of each generated piece,
and segments of the same number of notes cut from held-out (test and val) files,
both moved to start in bar 1 (a whole piece of 2,000 notes would dwarf a
generated one in pitch range and pitch count). Memorisation looks at the new
notes only: a prompt comes from a test file, not from the training data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.evaluation import corpus as corpus_mod
from tunesmith.evaluation.loss import evaluate_loss
from tunesmith.evaluation.markdown import render_markdown
from tunesmith.evaluation.memorisation import MemorisationIndex, load_checkpoint_index
from tunesmith.evaluation.metrics import BAR_STEPS, compare_metrics, compute_metrics
from tunesmith.evaluation.plots import metric_plots, pianoroll_png

SEARCHES = ("greedy", "top_k", "top_p", "beam")
DETERMINISTIC = ("greedy", "beam")  # from nothing, every seed gives the same piece
COPY_LIMIT = 16  # the quality bar: no generated run longer than this appears in a training file


@dataclass(frozen=True)
class EvalSettings:
    """What ``evaluate`` generates and compares; validated on construction."""

    samples: int = 4  # pieces per search method and kind of start
    seed: int = 0
    notes: int = 128  # new notes per piece, and notes per real segment
    prompt_notes: int = 32  # notes of a test file's opening used as a prompt
    searches: tuple[str, ...] = SEARCHES
    segments_per_file: int = 8  # real segments cut from each held-out file at most
    pianorolls: bool = True

    def __post_init__(self) -> None:
        for name in ("samples", "notes", "prompt_notes", "segments_per_file"):
            if getattr(self, name) < 1:
                raise BadParameterError(
                    f"--{name.replace('_', '-')}: must be at least 1, not {getattr(self, name)}"
                )
        unknown = set(self.searches) - set(SEARCHES)
        if unknown or not self.searches:
            raise BadParameterError(f"searches: choose from {', '.join(SEARCHES)}")


def rebase(rows: np.ndarray) -> np.ndarray:
    """Move notes so that the bar of the first one becomes bar 1 (keeps the beat phase)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3).copy()
    if len(rows):
        rows[:, 0] -= (rows[:, 0].min() // BAR_STEPS) * BAR_STEPS
    return rows


def real_segments(grids: list[np.ndarray], notes: int, per_file: int) -> list[np.ndarray]:
    """Consecutive segments of ``notes`` notes from each grid (at most ``per_file`` each)."""
    out = []
    for g in grids:
        n = min(len(g) // notes, per_file) if len(g) >= notes else (1 if len(g) else 0)
        out.extend(rebase(g[i * notes : (i + 1) * notes]) for i in range(n))
    return out


def check_out_dir(path: str | Path) -> Path:
    """Refuse an ``--out`` that is a file or whose parent folder is missing (nothing is made yet)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise TunesmithError(f"--out {out}: exists and is not a folder")
    if not out.parent.exists():
        raise TunesmithError(f"--out {out}: folder {out.parent} does not exist")
    return out


def _finite(x: Any) -> Any:
    """JSON has no NaN: NaN and infinities become null, recursively."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _memorisation_index(
    ckpt_path: Path, corpus: corpus_mod.Corpus
) -> tuple[MemorisationIndex, str]:
    carried = load_checkpoint_index(ckpt_path)
    if carried is not None:
        return carried, f"the index carried by the checkpoint ({len(carried.names)} files)"
    index = MemorisationIndex.build(corpus.grids("train"), corpus.files["train"])
    return index, f"train split of {corpus.description} ({len(corpus.files['train'])} files)"


def run_evaluation(
    model: str | Path | None,
    out_dir: str | Path,
    data: str | Path | None = None,
    settings: EvalSettings | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Evaluate a checkpoint (``None``: the bundled model) and write the report to ``out_dir``.

    Returns the report (the content of ``report.json``).
    """
    from tunesmith.generation.generator import Generator
    from tunesmith.model.checkpoint import load_checkpoint
    from tunesmith.tokenization.midi_io import save_midi, score_from_grid

    settings = settings or EvalSettings()
    out = check_out_dir(out_dir)
    ckpt = load_checkpoint(model)
    data_path = (
        Path(data) if data is not None else corpus_mod.model_data_path(ckpt.config, ckpt.path)
    )
    corpus = corpus_mod.open_corpus(data_path, ckpt.tokenizer)
    corpus_mod.require_held_out(corpus)
    # Only now that the inputs are known to be good is anything written.
    (out / "samples").mkdir(parents=True, exist_ok=True)
    tok = ckpt.tokenizer
    log(f"data: {corpus.description}: {corpus.counts()}")

    losses = {}
    for split in ("test", "val"):
        if corpus.files[split]:
            losses[split] = evaluate_loss(
                ckpt.model, corpus.ids[split], tok.pad_id, tok.eos_id
            ).to_dict()
            log(f"{split} loss {losses[split]['loss']:.4f}")

    index, index_source = _memorisation_index(ckpt.path, corpus)
    held_out = "test" if corpus.files["test"] else "val"
    openings = [
        (name, g)
        for name, g in zip(corpus.files[held_out], corpus.grids(held_out), strict=True)
        if len(g)
    ]
    gen = Generator(ckpt.model, tok, ckpt.path, ckpt.checksum)
    pieces: list[dict[str, Any]] = []
    new_grids: list[np.ndarray] = []
    rolls: dict[str, str] = {}
    for search in settings.searches:
        starts: list[tuple[str, str | None, np.ndarray | None]] = []
        # A deterministic search makes one piece per start: more would be copies of it.
        n_empty = 1 if search in DETERMINISTIC else settings.samples
        n_open = (
            min(settings.samples, len(openings)) if search in DETERMINISTIC else settings.samples
        )
        starts += [("nothing", None, None)] * n_empty
        starts += [
            ("opening", *openings[i % len(openings)]) for i in range(n_open if openings else 0)
        ]
        for i, (kind, prompt_file, prompt_grid) in enumerate(starts):
            prompt = (
                score_from_grid(prompt_grid[: settings.prompt_notes])
                if prompt_grid is not None
                else None
            )
            seed = settings.seed + i
            res = gen.generate(
                prompt,
                prompt_notes=settings.prompt_notes,
                search=search,
                notes=settings.notes,
                seed=seed,
            )
            name = f"{search}_{kind}_{i:02d}"
            save_midi(res.score, out / "samples" / f"{name}.mid")
            match = index.longest_copy(res.grid, from_note=res.n_prompt_notes)
            pieces.append({
                "name": name, "search": search, "start": kind, "prompt_file": prompt_file, "seed": seed,
                "prompt_notes": res.n_prompt_notes, "new_notes": res.n_new_notes, "stop_reason": res.stop_reason,
                "seconds": res.seconds, "tokens_per_second": res.tokens_per_second,
                "midi": f"samples/{name}.mid", "memorisation": match.to_dict(), "memorisation_text": match.describe(),
            })  # fmt: skip
            new_grids.append(rebase(res.grid[res.n_prompt_notes :]))
            if settings.pianorolls and f"{search}_{kind}" not in rolls:
                title = f"{search}, from {'nothing' if prompt_file is None else 'the opening of ' + prompt_file}"
                rolls[f"{search}_{kind}"] = pianoroll_png(
                    res.grid, res.n_prompt_notes, title, out / f"pianoroll_{name}.png"
                ).name
            log(f"{name}: {res.n_new_notes} notes, {match.describe()}")

    segments = real_segments(
        corpus.grids("test") + corpus.grids("val"), settings.notes, settings.segments_per_file
    )
    real = compute_metrics(segments)
    generated = compute_metrics(new_grids)
    comparison = compare_metrics(real, generated)
    by_search = {}
    for search in settings.searches:
        rows = [g for g, p in zip(new_grids, pieces, strict=True) if p["search"] == search]
        by_search[search] = compare_metrics(real, compute_metrics(rows))
    for i, piece in enumerate(pieces):  # each piece's own values, beside its memorisation
        piece["metrics"] = {name: float(v[i]) for name, v in generated.scalars.items()}
    plots = metric_plots(real, generated, comparison, out) if segments and new_grids else {}
    baseline = [index.longest_copy(s).length_notes for s in segments]

    runs = [p["memorisation"]["length_notes"] for p in pieces]
    report = {
        "tool": "tunesmith evaluate",
        "model": {
            "path": str(ckpt.path),
            "sha256": ckpt.checksum,
            "config": ckpt.config.get("model"),
        },
        "data": {"description": corpus.description, "files": corpus.counts()},
        "settings": {**asdict(settings), "searches": list(settings.searches)},
        "loss": losses,
        "pieces": pieces,
        "metrics": {
            "real_segments": len(segments),
            "generated_pieces": len(new_grids),
            "all": comparison,
            "by_search": by_search,
            "real_summary": real.summary(),
        },
        "memorisation": {
            "index": index_source,
            "index_notes": index.n_notes,
            "limit": COPY_LIMIT,
            "max_run": max(runs, default=0),
            "over_limit": sum(r > COPY_LIMIT for r in runs),
            "by_search": {
                s: max(
                    (r for r, p in zip(runs, pieces, strict=True) if p["search"] == s), default=0
                )
                for s in settings.searches
            },
            "held_out_baseline": {
                "max": max(baseline, default=0),
                "mean": float(np.mean(baseline)) if baseline else None,
            },
        },
        "plots": {"metrics": plots, "pianorolls": rolls},
    }
    report = _finite(report)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    return report
