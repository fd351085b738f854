"""``report.md`` and the short table ``evaluate`` prints, both from the report dict."""

from __future__ import annotations

from typing import Any

from tunesmith.evaluation.metrics import HISTOGRAM_METRICS, SCALAR_METRICS


def _f(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def summary_table(report: dict[str, Any]) -> str:
    """A few aligned lines: loss per split, then per search method the mean overlap and longest copy."""
    lines = []
    for split, r in report["loss"].items():
        lines.append(
            f"{split:<5} loss {_f(r['loss'])}  perplexity {_f(r['perplexity'], 2)}  "
            f"accuracy {_f(r['accuracy'])}  ({r['tokens']} tokens, {r['files']} files)"
        )
    lines.append(f"{'search':<8}{'pieces':>7}{'mean overlap':>14}{'longest copy (notes)':>22}")
    mem = report["memorisation"]
    for search, comp in report["metrics"]["by_search"].items():
        overlaps = [v["overlap"] for v in comp.values() if v.get("overlap") is not None]
        mean = sum(overlaps) / len(overlaps) if overlaps else None
        n = sum(p["search"] == search for p in report["pieces"])
        lines.append(f"{search:<8}{n:>7}{_f(mean, 2):>14}{mem['by_search'][search]:>22}")
    lines.append(
        f"real held-out segments against the training data: longest run {mem['held_out_baseline']['max']} notes "
        f"(limit {mem['limit']}; generated pieces over it: {mem['over_limit']})"
    )
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown, with the plots linked."""
    m = report["metrics"]
    mem = report["memorisation"]
    out = [
        "# tunesmith evaluation",
        "",
        f"Model: `{report['model']['path']}` (sha256 {report['model']['sha256']})  ",
        f"Data: {report['data']['description']}; files per split: {report['data']['files']}",
        "",
        "## Held-out loss",
        "",
        *_table(
            ["split", "loss (nats/token)", "perplexity", "token accuracy", "tokens", "files"],
            [
                [
                    s,
                    _f(r["loss"], 4),
                    _f(r["perplexity"], 2),
                    _f(r["accuracy"], 4),
                    str(r["tokens"]),
                    str(r["files"]),
                ]
                for s, r in report["loss"].items()
            ],
        ),
        "",
        "## Musical statistics",
        "",
        f"{m['generated_pieces']} generated pieces (their new notes) against {m['real_segments']} segments of "
        f"{report['settings']['notes']} notes from held-out files. Overlap: the overlapping area of the two "
        "distributions (kernel density estimates for numbers, mean histograms for histograms); 1 is identical.",
        "",
    ]
    searches = list(m["by_search"])
    header = [
        "metric",
        "real mean ± sd",
        "generated mean ± sd",
        "overlap (all)",
        *[f"overlap {s}" for s in searches],
    ]
    rows = []
    for name in (*SCALAR_METRICS, *HISTOGRAM_METRICS):
        a = m["all"][name]
        real = f"{_f(a.get('real_mean'))} ± {_f(a.get('real_std'))}" if "real_mean" in a else ""
        gen = (
            f"{_f(a.get('generated_mean'))} ± {_f(a.get('generated_std'))}"
            if "generated_mean" in a
            else ""
        )
        plot = report["plots"]["metrics"].get(name)
        label = f"[{name}]({plot})" if plot else name
        rows.append(
            [
                label,
                real,
                gen,
                _f(a["overlap"], 2),
                *[_f(m["by_search"][s][name]["overlap"], 2) for s in searches],
            ]
        )
    out += _table(header, rows)
    out += [
        "",
        "## Memorisation",
        "",
        f"Longest run of consecutive notes (pitch intervals and durations, any transposition) of each piece's new "
        f"notes that also occurs in a training file. Index: {mem['index']}, {mem['index_notes']} notes. "
        f"Longest overall: {mem['max_run']} note(s); pieces over {mem['limit']} notes: {mem['over_limit']}. "
        f"For scale, held-out real segments share at most {mem['held_out_baseline']['max']} notes "
        f"(mean {_f(mem['held_out_baseline']['mean'], 1)}) with the training data.",
        "",
    ]
    out += _table(
        ["piece", "search", "start", "new notes", "stop", "longest copied run", "from", "MIDI"],
        [
            [
                p["name"], p["search"], p["start"] if p["prompt_file"] is None else f"opening of {p['prompt_file']}",
                str(p["new_notes"]), p["stop_reason"], str(p["memorisation"]["length_notes"]),
                p["memorisation"]["file"] or "", f"[mid]({p['midi']})",
            ]
            for p in report["pieces"]
        ],
    )  # fmt: skip
    rolls = report["plots"]["pianorolls"]
    if rolls:
        out += ["", "## Piano rolls", ""]
        out += [f"![{key}]({name})" for key, name in rolls.items()]
    return "\n".join(out) + "\n"
