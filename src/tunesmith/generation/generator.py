"""``Generator``: model + tokenizer + device, the one object every front end calls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import symusic
import torch

from tunesmith.errors import BadMidiError, BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.grammar import pitch_allowed
from tunesmith.generation.search import Callback, beam_search, sample
from tunesmith.model.checkpoint import load_checkpoint
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import grid_notes, score_bpm, score_from_grid
from tunesmith.tokenization.seed import SeedTokenizer


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch threads, then restore the previous setting."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def check_candidates(tokenizer: Tokenizer, cfg: GenerationConfig) -> None:
    """Refuse a top-k offset that would drop every pitch and rest the rules allow."""
    if cfg.search != "top_k":
        return
    n_pitches = int(pitch_allowed(tokenizer, cfg).sum())  # also refuses a scale/range with none
    if cfg.top_k_offset >= n_pitches + 1:
        raise BadParameterError(
            f"--top-k-offset: {cfg.top_k_offset} leaves no candidate "
            f"(the scale and pitch range allow {n_pitches} pitches and the rest)"
        )


@dataclass
class GenerationResult:
    """A generated piece: the prompt's notes first, then the new ones."""

    score: symusic.Score
    grid: np.ndarray  # (N, 3) step, pitch, duration; the first n_prompt_notes rows are the prompt's
    ids: list[int]
    prompt_length: int  # ids of the prompt (prefix included)
    n_prompt_notes: int
    n_new_notes: int
    seconds: float
    tokens_per_second: float
    stop_reason: str
    config: GenerationConfig
    bpm: float
    warnings: list[str] = field(default_factory=list)
    memorisation: Any = None  # filled in by the evaluation layer when an index is at hand

    @property
    def new_ids(self) -> list[int]:
        return self.ids[self.prompt_length :]


class Generator:
    """Continue a prompt (or start from nothing) with a trained model."""

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        checkpoint: Path | None = None,
        checksum: str | None = None,
        num_threads: int | None = 1,
    ) -> None:
        """``num_threads``: torch threads while decoding (None: leave torch's setting).

        One thread is the default: batch-1 decoding is bound by memory traffic, so a
        second thread gains little on an idle machine, while on a busy one OpenMP
        threads that spin waiting for each other can be far slower
        (``python -m benchmarks.generation --threads N`` measures it).
        """
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.checksum = checksum
        self.num_threads = num_threads

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str = "cpu", num_threads: int | None = 1
    ) -> Generator:
        """Load a checkpoint folder; ``None`` loads the model bundled with the package."""
        ckpt = load_checkpoint(path, device=device)
        return cls(ckpt.model, ckpt.tokenizer, ckpt.path, ckpt.checksum, num_threads)

    def encode_prompt(
        self, prompt: symusic.Score | None, prompt_notes: int | None = None
    ) -> tuple[list[int], int, np.ndarray]:
        """Ids of the prompt's first ``prompt_notes`` notes (all when None), their count and rows."""
        if prompt_notes is not None and prompt_notes < 0:
            raise BadParameterError(f"--prompt-notes: must be 0 or more, not {prompt_notes}")
        rows = np.zeros((0, 3), dtype=np.int32)
        if prompt is not None:
            rows = grid_notes(prompt)
            if len(rows) == 0 and prompt_notes != 0:
                raise BadMidiError("the prompt has no notes in the piano range (21-108)")
            if prompt_notes is not None:
                rows = rows[:prompt_notes]
        if isinstance(self.tokenizer, SeedTokenizer):
            ids = self.tokenizer.encode_grid(rows).tolist()
        elif len(rows):
            ids = self.tokenizer.encode(score_from_grid(rows))
        else:
            ids = list(self.tokenizer.prefix)
        return ids, len(rows), rows

    @torch.inference_mode()
    def generate(
        self,
        prompt: symusic.Score | None = None,
        prompt_notes: int | None = None,
        config: GenerationConfig | None = None,
        callback: Callback | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Generate new notes after the prompt; ``params`` override ``config``'s fields.

        ``callback(done, target)`` is called after every token with progress in
        notes (or grid steps when ``bars`` is set); returning True cancels.
        """
        cfg = config or GenerationConfig()
        if params:
            unknown = set(params) - set(cfg.to_dict())
            if unknown:
                raise BadParameterError(
                    f"unknown generation parameter(s): {', '.join(sorted(unknown))}"
                )
            if "bars" in params and params["bars"] is not None:
                params.setdefault("notes", None)
            cfg = replace(cfg, **params)
        check_candidates(self.tokenizer, cfg)
        prompt_ids, n_prompt, _ = self.encode_prompt(prompt, prompt_notes)
        warnings = []
        context = self.model.cfg.context
        if len(prompt_ids) > context:
            warnings.append(
                f"the prompt has {len(prompt_ids)} tokens, more than the model's context of {context}: "
                "the model sees its last part"
            )
        bpm = cfg.bpm or (score_bpm(prompt) if prompt is not None else 120.0)
        run = beam_search if cfg.search == "beam" else sample
        t0 = time.perf_counter()
        with torch_threads(self.num_threads):
            decoded = run(self.model, self.tokenizer, prompt_ids, cfg, callback)
        seconds = time.perf_counter() - t0
        ids = prompt_ids + decoded.ids
        score = self.tokenizer.decode(ids, bpm=bpm)
        if isinstance(self.tokenizer, SeedTokenizer):
            grid = self.tokenizer.decode_grid(ids)
        else:
            grid = grid_notes(score)
        return GenerationResult(
            score=score,
            grid=grid,
            ids=ids,
            prompt_length=len(prompt_ids),
            n_prompt_notes=n_prompt,
            n_new_notes=max(0, len(grid) - n_prompt),
            seconds=seconds,
            tokens_per_second=len(decoded.ids) / seconds if seconds > 0 else 0.0,
            stop_reason=decoded.stop_reason,
            config=cfg,
            bpm=bpm,
            warnings=warnings,
        )
