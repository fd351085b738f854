"""``tunesmith evaluate`` end to end: loss, generated pieces, statistics, copies, report files.

The pieces compared are like for like: the *new* notes of each generated piece,
and excerpts of exactly as many notes cut from held-out (test and val) files,
both moved to start in bar 1 (a whole piece of 2,000 notes would dwarf a
generated one in pitch range and pitch count, and repeat more of its bars).
Memorisation looks at the new notes only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.evaluation import corpus as corpus_mod
from tunesmith.evaluation.equal_length import real_at_lengths
from tunesmith.evaluation.loss import evaluate_loss
from tunesmith.evaluation.markdown import render_markdown
from tunesmith.evaluation.memorisation import MemorisationIndex, load_checkpoint_index
from tunesmith.evaluation.metrics import MetricSet, compare_metrics, compute_metrics
from tunesmith.evaluation.plots import metric_plots
from tunesmith.evaluation.reference import reference_overlaps
from tunesmith.evaluation.sampling import (
    SEARCHES,
    EvalSettings,
    Opening,
    Samples,
    generate_pieces,
    rebase,
)
from tunesmith.evaluation.summary import LIMITS, by_setting, quality_checks, set_summary

__all__ = ["SEARCHES", "EvalSettings", "real_segments", "rebase", "run_evaluation"]
COPY_LIMIT = LIMITS["copy_max"]


def real_segments(grids: list[np.ndarray], notes: int, per_file: int) -> list[np.ndarray]:
    """Consecutive excerpts of exactly ``notes`` notes of each grid (at most ``per_file`` each).

    A file shorter than ``notes`` gives none: a short whole piece is not an
    excerpt of the length the generated pieces have.
    """
    out = []
    for g in grids:
        n = min(len(g) // notes, per_file)
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


def _openings(corpus: corpus_mod.Corpus, split: str) -> list[Opening]:
    """The files of ``split`` that have notes, with their grids (their openings become prompts)."""
    pairs = zip(corpus.files[split], corpus.grids(split), strict=True)
    return [(name, g) for name, g in pairs if len(g)]


def _held_out_grids(corpus: corpus_mod.Corpus) -> list[np.ndarray]:
    """The grids of the held-out files: the test split's, then the val split's."""
    return corpus.grids("test") + corpus.grids("val")


def _excerpts(corpus: corpus_mod.Corpus, settings: EvalSettings) -> list[np.ndarray]:
    """Real held-out excerpts as long as the pieces; refused before any work when there are none."""
    grids = _held_out_grids(corpus)
    segments = real_segments(grids, settings.notes, settings.excerpts_per_file)
    if not segments:
        longest = max((len(g) for g in grids), default=0)
        raise BadParameterError(
            f"--notes: no held-out file of {corpus.description} has {settings.notes} notes to cut "
            f"an excerpt of that length from (the longest has {longest}); use fewer"
        )
    return segments


def _held_out_openings(corpus: corpus_mod.Corpus, settings: EvalSettings) -> list[np.ndarray]:
    """The first ``settings.notes`` notes of each held-out file that has as many."""
    return real_segments(_held_out_grids(corpus), settings.notes, 1)


def _losses(ckpt: Any, corpus: corpus_mod.Corpus, log: Callable[[str], None]) -> dict[str, Any]:
    """Loss, perplexity and accuracy on the test and val splits (those that have files)."""
    tok = ckpt.tokenizer
    losses = {}
    for split in ("test", "val"):
        if corpus.files[split]:
            result = evaluate_loss(ckpt.model, corpus.ids[split], tok.pad_id, tok.eos_id)
            losses[split] = result.to_dict()
            log(f"{split} loss {result.loss:.4f}")
    return losses


def _metrics_section(
    real: MetricSet, samples: Samples, out: Path, segments: list[np.ndarray]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every metric real (full ``real`` excerpts; compared cut to the pieces' lengths) against
    generated (all pieces), and one plot per metric."""
    generated = compute_metrics(samples.grids)
    matched = real_at_lengths(segments, [len(g) for g in samples.grids])
    comparison = compare_metrics(matched, generated)
    for i, piece in enumerate(samples.pieces):  # each piece's own values, beside its memorisation
        piece["metrics"] = {name: float(v[i]) for name, v in generated.scalars.items()}
    plots = metric_plots(matched, generated, comparison, out) if samples.grids else {}
    section = {
        "real_segments": len(real),
        "generated_pieces": len(generated),
        "all": comparison,
        "real_summary": real.summary(),
        "real_texture": set_summary(real),
    }
    return section, plots


def _reference(
    held_out: MetricSet, corpus: corpus_mod.Corpus, settings: EvalSettings
) -> dict[str, Any]:
    """The overlap that sets of real training excerpts and openings reach (:mod:`.reference`)."""
    grids = corpus.grids("train")
    excerpts = real_segments(grids, settings.notes, settings.excerpts_per_file)
    openings = real_segments(grids, settings.notes, 1)
    return reference_overlaps(held_out, excerpts, openings, settings.samples, settings.seed)


def _memorisation_section(
    index: MemorisationIndex, source: str, pieces: list[dict[str, Any]], segments: list[np.ndarray]
) -> dict[str, Any]:
    """The longest copied run overall and per setting, beside what real held-out music shares."""
    runs = [p["memorisation"]["length_notes"] for p in pieces]
    per_setting: dict[str, int] = {}
    for run, piece in zip(runs, pieces, strict=True):
        per_setting[piece["setting"]] = max(run, per_setting.get(piece["setting"], 0))
    baseline = [index.longest_copy(s).length_notes for s in segments]
    return {
        "index": source,
        "index_notes": index.n_notes,
        "limit": COPY_LIMIT,
        "max_run": max(runs, default=0),
        "over_limit": sum(r > COPY_LIMIT for r in runs),
        "by_setting": per_setting,
        "held_out_baseline": {
            "max": max(baseline, default=0),
            "mean": float(np.mean(baseline)) if baseline else None,
        },
    }


def _data_section(corpus: corpus_mod.Corpus) -> dict[str, Any]:
    """Where the data came from, its files per split, and every file rejected with its reason."""
    return {
        "description": corpus.description,
        "files": corpus.counts(),
        "rejected": [{"file": f, "reason": r} for f, r in corpus.rejected],
    }


def _write(report: dict[str, Any], out: Path) -> dict[str, Any]:
    report = _finite(report)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    return report


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
    from tunesmith.generation.config import GenerationConfig
    from tunesmith.generation.generator import Generator
    from tunesmith.model.checkpoint import load_checkpoint

    settings = settings or EvalSettings()
    out = check_out_dir(out_dir)
    ckpt = load_checkpoint(model)
    data_path = data if data is not None else corpus_mod.model_data_path(ckpt.config, ckpt.path)
    corpus = corpus_mod.open_corpus(data_path, ckpt.tokenizer)
    corpus_mod.require_held_out(corpus)
    segments = _excerpts(corpus, settings)
    # Only now that the inputs are known to be good is anything written.
    (out / "samples").mkdir(parents=True, exist_ok=True)
    log(f"data: {corpus.description}: {corpus.counts()}, {len(corpus.rejected)} file(s) rejected")
    losses = _losses(ckpt, corpus, log)
    index, index_source = _memorisation_index(ckpt.path, corpus)
    held_out = "test" if corpus.files["test"] else "val"
    gen = Generator(ckpt.model, ckpt.tokenizer, ckpt.path, ckpt.checksum,
                    num_threads=settings.threads, backend=settings.backend)  # fmt: skip
    test, train = _openings(corpus, held_out), _openings(corpus, "train")
    samples = generate_pieces(gen, settings, test, train, index, out, log)
    real = compute_metrics(segments)
    metrics, plots = _metrics_section(real, samples, out, segments)
    metrics["reference"] = _reference(real, corpus, settings)
    report: dict[str, Any] = {
        "tool": "tunesmith evaluate",
        "model": {"path": str(ckpt.path), "sha256": ckpt.checksum, "config": ckpt.config.get("model")},
        "data": _data_section(corpus),
        "settings": {**asdict(settings), "searches": list(settings.searches)},
        "loss": losses,
        "pieces": samples.pieces,
        "metrics": metrics,
        "settings_summary": by_setting(
            segments, samples.pieces, samples.grids, _held_out_openings(corpus, settings)
        ),
        "memorisation": _memorisation_section(index, index_source, samples.pieces, segments),
        "plots": {"metrics": plots, "pianorolls": samples.rolls},
    }  # fmt: skip
    defaults = GenerationConfig()
    report["checks"] = quality_checks(_finite(report), defaults.search, defaults.beam_width)
    return _write(report, out)
