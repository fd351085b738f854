"""Loss and accuracy curves of a run, train vs val, from its ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.training.metrics import read_metrics

CURVES_FILE = "curves.png"


def plot_run(run_dir: str | Path, out: str | Path | None = None, x_axis: str = "step") -> Path:
    """Draw ``run_dir/metrics.jsonl`` to a PNG (default ``run_dir/curves.png``); return its path.

    ``x_axis`` is ``step`` or ``tokens``. Written atomically (temporary name, then
    rename) so a viewer never sees half a file.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, works without a display
    import matplotlib.pyplot as plt

    if x_axis not in ("step", "tokens"):
        raise TunesmithError(f"--x: must be 'step' or 'tokens', not {x_axis!r}")
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    if not records:
        raise TunesmithError(f"{run_dir}: metrics.jsonl holds no records yet")
    out = Path(out) if out is not None else run_dir / CURVES_FILE
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, key, title in (
        (axes[0], "loss", "loss (cross-entropy, nats/token)"),
        (axes[1], "acc", "token accuracy"),
    ):
        for split, style in (("train", "-"), ("val", "o-")):
            rows = [r for r in records if r.get("split") == split and key in r and x_axis in r]
            if rows:
                ax.plot(
                    [r[x_axis] for r in rows],
                    [r[key] for r in rows],
                    style,
                    label=split,
                    markersize=3,
                )
        ax.set_title(title)
        ax.set_xlabel("training tokens" if x_axis == "tokens" else "step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(run_dir.name)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
