"""``report.md`` and the short summary ``evaluate`` prints, both from the report dict."""

from __future__ import annotations

from typing import Any

from tunesmith.evaluation.metrics import HISTOGRAM_METRICS, SCALAR_METRICS

MAX_PRINTED_REJECTS = 20  # the printed summary lists this many rejected files; report.json all


def _f(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _n(x: Any) -> str:
    return "n/a" if x is None else f"{x:g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _setting_cells(s: dict[str, Any]) -> list[str]:
    """Texture means, overlaps and collapse minima of one setting (or of the real excerpts)."""
    lowest = s.get("lowest_overlap")
    lowest_text = "" if lowest is None else f"{_f(lowest, 2)} {s['lowest_overlap_metric']}"
    return [
        str(s["pieces"]),
        _pct(s["repeated_bar_rate"]),
        _pct(s["bass_share"]),
        _pct(s["long_note_share"]),
        _f(s.get("mean_overlap"), 2) if "mean_overlap" in s else "",
        lowest_text,
        _n(s["min_pitch_classes"]),
        _n(s["min_pitch_range"]),
        str(s["longest_copy"]) if "longest_copy" in s else "",
    ]


SETTING_HEADER = [
    "setting",
    "pieces",
    "repeated bars",
    "bass (<48)",
    "long notes",
    "mean KDE overlap",
    "lowest overlap",
    "min pitch classes",
    "min pitch range",
    "longest copy",
]


def _check_line(c: dict[str, Any]) -> str:
    op = ">=" if c["at_least"] else "<="
    value = c["value"]
    value = _f(value) if isinstance(value, float) and not value.is_integer() else _n(value)
    return f"{'PASS' if c['passed'] else 'FAIL'}  {c['check']}: {value} (bar {op} {_n(c['limit'])})"


def rejected_lines(report: dict[str, Any], limit: int | None = None) -> list[str]:
    """``rejected N file(s):`` then one line per file with its reason (``limit`` of them)."""
    rejected = report["data"].get("rejected", [])
    if not rejected:
        return []
    shown = rejected if limit is None else rejected[:limit]
    lines = [f"rejected {len(rejected)} file(s) of the data:"]
    lines += [f"  {r['file']}: {r['reason']}" for r in shown]
    if len(shown) < len(rejected):
        lines.append(f"  and {len(rejected) - len(shown)} more (see report.json)")
    return lines


def summary_table(report: dict[str, Any]) -> str:
    """What ``evaluate`` prints: losses, one line per setting, the quality checks, rejected files."""
    lines = []
    for split, r in report["loss"].items():
        lines.append(
            f"{split:<5} loss {_f(r['loss'])}  perplexity {_f(r['perplexity'], 2)}  "
            f"accuracy {_f(r['accuracy'])}  ({r['tokens']} tokens, {r['files']} files)"
        )
    widths = [22, 7, 10, 8, 8, 9, 30, 8, 7, 5]
    header = ["setting", "pieces", "rep.bars", "bass", "long", "overlap", "lowest overlap"]
    header += ["min pc", "range", "copy"]
    rows = [["real excerpts", *_setting_cells(report["metrics"]["real_texture"])]]
    rows += [[name, *_setting_cells(s)] for name, s in report["settings_summary"].items()]
    for row in [header, *rows]:
        lines.append("".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip())
    mem = report["memorisation"]
    lines.append(
        f"real held-out excerpts against the training data: longest run "
        f"{mem['held_out_baseline']['max']} notes (generated pieces over {mem['limit']}: "
        f"{mem['over_limit']})"
    )
    lines += [_check_line(c) for c in report["checks"]]
    line = reference_line(report)
    lines += [] if line is None else [line]
    lines += rejected_lines(report, MAX_PRINTED_REJECTS)
    return "\n".join(lines)


def _header_section(report: dict[str, Any]) -> list[str]:
    files = report["data"]["files"]
    out = [
        "# tunesmith evaluation",
        "",
        f"Model: `{report['model']['path']}` (sha256 {report['model']['sha256']})  ",
        f"Data: {report['data']['description']}; files per split: {files}",
    ]
    rejected = report["data"].get("rejected", [])
    if rejected:
        out += ["", f"Rejected {len(rejected)} file(s) of the data:", ""]
        out += [f"- `{r['file']}`: {r['reason']}" for r in rejected]
    return out


def _loss_section(report: dict[str, Any]) -> list[str]:
    rows = [
        [s, _f(r["loss"], 4), _f(r["perplexity"], 2), _f(r["accuracy"], 4)]
        + [str(r["tokens"]), str(r["files"])]
        for s, r in report["loss"].items()
    ]
    header = ["split", "loss (nats/token)", "perplexity", "token accuracy", "tokens", "files"]
    return ["", "## Held-out loss", "", *_table(header, rows)]


def reference_line(report: dict[str, Any]) -> str | None:
    """What real music scores on the mean KDE overlap, for scale (None in older reports)."""
    ref = report["metrics"].get("reference") or {}
    parts = [
        f"{r['pieces']} real {what} of {report['settings']['notes']} notes score "
        f"{_f(r['mean'])} ± {_f(r['std'])} (from {_f(r['min'])} to {_f(r['max'])} in "
        f"{r['draws']} draws)"
        for what, r in (("training excerpts", ref.get("excerpts")),
                        ("training openings", ref.get("openings"))) if r
    ]  # fmt: skip
    if not parts:
        return None
    return (
        "For scale, the mean KDE overlap of real music with the same held-out excerpts: sets of "
        + "; sets of ".join(parts)
        + ". A piece from nothing is an opening."
        + openings_sentence(report)
    )


def openings_sentence(report: dict[str, Any]) -> str:
    """The settings from nothing against real held-out openings ('' in older reports)."""
    found = {n: s["vs_openings"] for n, s in report["settings_summary"].items()
             if s.get("vs_openings")}  # fmt: skip
    if not found:
        return ""
    n = next(iter(found.values()))["openings"]
    parts = [
        f"{name} {_f(v['mean_overlap'])} (lowest {_f(v['lowest_overlap'], 2)}, "
        f"{v['lowest_overlap_metric']})"
        for name, v in found.items()
    ]
    return (
        f" Against the openings of the {n} held-out files instead (their first "
        f"{report['settings']['notes']} notes), the mean KDE overlap of pieces from nothing: "
        + "; ".join(parts)
        + "."
    )


def _checks_section(report: dict[str, Any]) -> list[str]:
    out = ["", "## Quality bar", ""]
    out += [f"- {_check_line(c)}" for c in report["checks"]]
    line = reference_line(report)
    return out if line is None else [*out, "", line]


def _settings_section(report: dict[str, Any]) -> list[str]:
    m = report["metrics"]
    rows = [["real excerpts", *_setting_cells(m["real_texture"])]]
    rows += [[name, *_setting_cells(s)] for name, s in report["settings_summary"].items()]
    return [
        "",
        "## Per setting",
        "",
        f"Each generation setting (search method, start) against {m['real_segments']} real "
        f"excerpts of {report['settings']['notes']} notes from held-out files (cut to a piece's "
        "length where the model ended it earlier: pieces are compared at equal length). "
        "Repeated bars: "
        "the share of non-empty bars (4/4) whose notes (position, pitch, duration) equal an "
        "earlier bar's; bass: notes below MIDI 48; long notes: a half note or more. Mean and "
        "lowest KDE overlap over the scalar metrics; pitch classes and range: the lowest over "
        "the setting's pieces; copy: the longest run of notes shared with a training file.",
        "",
        *_table(SETTING_HEADER, rows),
    ]


def _metric_rows(report: dict[str, Any], settings: list[str]) -> list[list[str]]:
    m, plots = report["metrics"], report["plots"]["metrics"]
    rows = []
    for name in (*SCALAR_METRICS, *HISTOGRAM_METRICS):
        a = m["all"][name]
        real = f"{_f(a['real_mean'])} ± {_f(a['real_std'])}" if "real_mean" in a else ""
        gen = (
            f"{_f(a['generated_mean'])} ± {_f(a['generated_std'])}" if "generated_mean" in a else ""
        )
        label = f"[{name}]({plots[name]})" if name in plots else name
        per_setting = [_f(report["settings_summary"][s]["overlaps"][name], 2) for s in settings]
        rows.append([label, real, gen, _f(a["overlap"], 2), *per_setting])
    return rows


def _metrics_section(report: dict[str, Any]) -> list[str]:
    m = report["metrics"]
    settings = list(report["settings_summary"])
    header = ["metric", "real mean ± sd", "generated mean ± sd", "overlap (all)", *settings]
    return [
        "",
        "## Musical statistics",
        "",
        f"{m['generated_pieces']} generated pieces (their new notes) against {m['real_segments']} "
        f"excerpts of {report['settings']['notes']} notes from held-out files, cut to each "
        "piece's length (real mean ± sd: as compared). Overlap: the overlapping area of the two "
        "distributions (kernel density estimates for numbers, mean histograms for histograms); "
        "1 is identical.",
        "",
        *_table(header, _metric_rows(report, settings)),
    ]


def _memorisation_section(report: dict[str, Any]) -> list[str]:
    mem = report["memorisation"]
    rows = [
        [
            p["name"], p["setting"], p["prompt_file"] or "", str(p["new_notes"]), p["stop_reason"],
            str(p["memorisation"]["length_notes"]), p["memorisation"]["file"] or "",
            f"[mid]({p['midi']})",
        ]
        for p in report["pieces"]
    ]  # fmt: skip
    header = ["piece", "setting", "prompt", "new notes", "stop", "longest copied run", "from"]
    return [
        "",
        "## Memorisation",
        "",
        "Longest run of consecutive notes (pitch intervals and durations, any transposition) of "
        f"each piece's new notes that also occurs in a training file. Index: {mem['index']}, "
        f"{mem['index_notes']} notes. Longest overall: {mem['max_run']} note(s); pieces over "
        f"{mem['limit']} notes: {mem['over_limit']}. For scale, held-out real excerpts share at "
        f"most {mem['held_out_baseline']['max']} notes (mean "
        f"{_f(mem['held_out_baseline']['mean'], 1)}) with the training data.",
        "",
        *_table([*header, "MIDI"], rows),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown, with the plots linked."""
    out = _header_section(report)
    for section in (
        _loss_section,
        _checks_section,
        _settings_section,
        _metrics_section,
        _memorisation_section,
    ):
        out += section(report)
    rolls = report["plots"]["pianorolls"]
    if rolls:
        out += ["", "## Piano rolls", ""]
        out += [f"![{key}]({name})" for key, name in rolls.items()]
    return "\n".join(out) + "\n"
