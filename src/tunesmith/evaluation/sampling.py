"""The pieces ``evaluate`` generates: which starts, one piece per start, saved as MIDI.

A *setting* is a search method and a kind of start: from nothing, from the
opening of a test file, or from the opening of a training file (the hardest
test of copying: the model has seen how that piece goes on). Each piece's new
notes are moved to start in bar 1 and kept for the statistics; its longest run
copied from the training data is measured on the new notes only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import BadParameterError
from tunesmith.evaluation.memorisation import MemorisationIndex
from tunesmith.evaluation.plots import pianoroll_png
from tunesmith.model.backend_names import decode_threads
from tunesmith.tokenization.midi_io import STEPS_PER_BAR

SEARCHES = ("greedy", "top_k", "top_p", "beam")
DETERMINISTIC = ("greedy", "beam")  # from nothing, every seed gives the same piece
STARTS = ("nothing", "test_opening", "train_opening")
Opening = tuple[str, np.ndarray]  # (file name, its grid notes)


@dataclass(frozen=True)
class EvalSettings:
    """What ``evaluate`` generates and compares; validated on construction."""

    samples: int = 4  # pieces per search method, from nothing and from test openings
    seed: int = 0
    notes: int = 128  # new notes per piece, and notes per real excerpt
    prompt_notes: int = 32  # notes of a file's opening used as a prompt
    searches: tuple[str, ...] = SEARCHES
    excerpts_per_file: int = 8  # real excerpts cut from each held-out file at most
    train_openings: int = 4  # pieces per search method prompted with training openings
    pianorolls: bool = True
    backend: str = "auto"  # the decoding step (tunesmith.model.backends)
    threads: int = 1  # CPU threads to decode with (speed only: the pieces are the same)

    def __post_init__(self) -> None:
        decode_threads(self.threads)  # refuses a count out of its bounds
        for name in ("samples", "notes", "prompt_notes", "excerpts_per_file"):
            if getattr(self, name) < 1:
                raise BadParameterError(
                    f"--{name.replace('_', '-')}: must be at least 1, not {getattr(self, name)}"
                )
        if self.train_openings < 0:
            raise BadParameterError(
                f"--train-openings: must be 0 or more, not {self.train_openings}"
            )
        unknown = set(self.searches) - set(SEARCHES)
        if unknown or not self.searches:
            raise BadParameterError(f"--searches: choose from {', '.join(SEARCHES)}")


@dataclass(frozen=True)
class Start:
    """Where one piece begins: ``kind`` is one of :data:`STARTS`."""

    kind: str
    prompt_file: str | None = None
    prompt_grid: np.ndarray | None = None


@dataclass
class Samples:
    """The generated pieces: one report row and one grid of new notes each, and piano rolls."""

    pieces: list[dict[str, Any]] = field(default_factory=list)
    grids: list[np.ndarray] = field(default_factory=list)
    rolls: dict[str, str] = field(default_factory=dict)


def setting_name(search: str, start: str) -> str:
    """The key of a setting in the report, e.g. ``top_k/test_opening``."""
    return f"{search}/{start}"


def rebase(rows: np.ndarray) -> np.ndarray:
    """Move notes so that the bar of the first one becomes bar 1 (keeps the beat phase)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3).copy()
    if len(rows):
        rows[:, 0] -= (rows[:, 0].min() // STEPS_PER_BAR) * STEPS_PER_BAR
    return rows


def plan_starts(
    search: str, settings: EvalSettings, test: list[Opening], train: list[Opening]
) -> list[Start]:
    """The starts of one search method's pieces, in order.

    A deterministic search makes one piece per distinct start: more would be
    copies of it. Sampling searches make ``samples`` pieces per kind of start,
    cycling through the openings (each piece has its own seed).
    """

    def openings(kind: str, files: list[Opening], wanted: int) -> list[Start]:
        n = min(wanted, len(files)) if search in DETERMINISTIC else wanted
        return [Start(kind, *files[i % len(files)]) for i in range(n if files else 0)]

    n_empty = 1 if search in DETERMINISTIC else settings.samples
    return [
        *[Start("nothing")] * n_empty,
        *openings("test_opening", test, settings.samples),
        *openings("train_opening", train, settings.train_openings),
    ]


def generate_pieces(
    gen: Any,
    settings: EvalSettings,
    test: list[Opening],
    train: list[Opening],
    index: MemorisationIndex,
    out: Path,
    log: Callable[[str], None],
) -> Samples:
    """Generate every setting's pieces with ``gen`` (a Generator), write them to ``out/samples``.

    Logs one line per piece, numbered out of the total, so a long run shows how far it is.
    """
    samples = Samples()
    plan = [
        (search, i, start)
        for search in settings.searches
        for i, start in enumerate(plan_starts(search, settings, test, train))
    ]
    log(f"generating {len(plan)} pieces of {settings.notes} new notes")
    for k, (search, i, start) in enumerate(plan, 1):
        done = _generate_one(gen, settings, search, i, start, index, out, samples)
        log(f"[{k}/{len(plan)}] {done}")
    return samples


def _generate_one(
    gen: Any,
    settings: EvalSettings,
    search: str,
    i: int,
    start: Start,
    index: MemorisationIndex,
    out: Path,
    samples: Samples,
) -> str:
    """Generate, save and measure one piece into ``samples``; returns a line for the log."""
    from tunesmith.tokenization.midi_io import save_midi, score_from_grid

    prompt = None
    if start.prompt_grid is not None:
        prompt = score_from_grid(start.prompt_grid[: settings.prompt_notes])
    seed = settings.seed + i
    res = gen.generate(
        prompt, prompt_notes=settings.prompt_notes, search=search, notes=settings.notes, seed=seed
    )
    name = f"{search}_{start.kind}_{i:02d}"
    save_midi(res.score, out / "samples" / f"{name}.mid")
    match = index.longest_copy(res.grid, from_note=res.n_prompt_notes)
    samples.pieces.append({
        "name": name, "search": search, "start": start.kind,
        "setting": setting_name(search, start.kind), "prompt_file": start.prompt_file,
        "seed": seed, "prompt_notes": res.n_prompt_notes, "new_notes": res.n_new_notes,
        "stop_reason": res.stop_reason, "seconds": res.seconds,
        "tokens_per_second": res.tokens_per_second, "midi": f"samples/{name}.mid",
        "memorisation": match.to_dict(), "memorisation_text": match.describe(),
    })  # fmt: skip
    samples.grids.append(rebase(res.grid[res.n_prompt_notes :]))
    key = f"{search}_{start.kind}"
    if settings.pianorolls and key not in samples.rolls:
        origin = "nothing" if start.prompt_file is None else f"the opening of {start.prompt_file}"
        title = f"{search}, from {origin}"
        png = pianoroll_png(res.grid, res.n_prompt_notes, title, out / f"pianoroll_{name}.png")
        samples.rolls[key] = png.name
    return f"{name}: {res.n_new_notes} notes in {res.seconds:.1f} s, {match.describe()}"
