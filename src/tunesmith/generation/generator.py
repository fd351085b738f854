"""``Generator``: model + tokenizer + device, the one object every front end calls."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import symusic
import torch

from tunesmith.errors import BadCheckpointError, BadParameterError
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.copyguard import CopyGuard
from tunesmith.generation.decoded import Decoded
from tunesmith.generation.ending import bars_for_seconds
from tunesmith.generation.grammar import Rule, pitch_allowed
from tunesmith.generation.harmony import chord_and_ending_rules
from tunesmith.generation.infill import check_infill_model, plan_infill
from tunesmith.generation.note_rules import DEFAULT_MAX_COPY, check_pairs_encoding, note_rules
from tunesmith.generation.prompt import as_score, encode_prompt, long_prompt_warnings, path_name
from tunesmith.generation.result import GenerationResult, continuation_result, decode_rate
from tunesmith.generation.search import Callback, beam_search, sample
from tunesmith.generation.training_notes import (
    INDEX_FILE,
    TrainingNotes,
    checkpoint_training_notes,
)
from tunesmith.model.backend_names import check_backend
from tunesmith.model.backends import StepBackend, open_backend
from tunesmith.model.checkpoint import load_checkpoint
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import score_bpm
from tunesmith.tokenization.pairs import GAP, PairTokenizer


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
            f"{cfg.top_k_offset} leaves no candidate "
            f"(the scale and pitch range allow {n_pitches} pitches and the rest)",
            field="top_k_offset",
        )


def check_finite_weights(model: Transformer, where: str) -> None:
    """Refuse a model with a NaN or infinite weight: it would write silence or noise."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BadCheckpointError(f"{where}: weight {name} is not finite (NaN or inf)")


def _config(config: GenerationConfig | None, params: dict[str, Any]) -> GenerationConfig:
    """``config`` (default: the defaults) with ``params`` applied, every field checked."""
    if config is not None and not isinstance(config, GenerationConfig):
        raise BadParameterError(
            f"expected a GenerationConfig, not {type(config).__name__}", field="config"
        )
    cfg = config or GenerationConfig()
    return cfg.with_params(**params) if params else cfg


def _load_failure(path: str | Path | None, err: BaseException) -> BadCheckpointError:
    """A one-line refusal naming the checkpoint whose config.json could not be built."""
    where = path if path is not None else "the bundled model"
    text = str(err)
    if isinstance(err, BadParameterError):
        reason = f"bad model config ({text})"
    elif "size mismatch" in text:
        reason = "the weights' shapes do not match config.json"
    elif isinstance(err, MemoryError) or "allocate" in text:
        reason = "config.json describes a model too large for this machine's memory"
    elif isinstance(err, AttributeError | TypeError):
        reason = f"config.json has a missing or malformed model section ({text[:120]})"
    else:
        reason = f"cannot build the model ({(text.strip().splitlines() or ['?'])[0][:120]})"
    return BadCheckpointError(f"{where}: {reason}")


class Generator:
    """Continue a prompt (or start from nothing) with a trained model."""

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        checkpoint: Path | None = None,
        checksum: str | None = None,
        num_threads: int | None = 1,
        backend: str = "auto",
    ) -> None:
        """``num_threads``: torch threads while decoding (None: leave torch's setting).

        One thread is the default: batch-1 decoding is bound by memory traffic, so a
        second thread gains little on an idle machine, while on a busy one OpenMP
        threads that spin waiting for each other can be far slower
        (``python -m benchmarks.generation --threads N`` measures it).
        ``backend``: the decoding step, ``auto`` (ONNX Runtime when installed, see
        :mod:`tunesmith.model.backends`), ``torch`` or ``onnx``; one that cannot run here
        is refused with a :class:`BadParameterError`. A model with a non-finite weight is
        refused too.
        """
        check_finite_weights(model, str(checkpoint) if checkpoint else "the model")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.checksum = checksum
        self.num_threads = num_threads
        self.requested_backend = check_backend(backend)
        self._backend: StepBackend | None = None  # resolved at the first generation

    @property
    def backend(self) -> StepBackend:
        """The decoding step in use, resolved (and for onnx, loaded) on first use."""
        if self._backend is None:
            self._backend = open_backend(self.requested_backend, self.model, self.checksum,
                                         self.checkpoint, self.num_threads)  # fmt: skip
        return self._backend

    def _step(self, cfg: GenerationConfig) -> StepBackend:
        """This generation's step: under ``auto``, beam search keeps the torch step, whose
        batched rows beat the ONNX step's (``python -m benchmarks.generation`` shows both)."""
        if cfg.search == "beam" and self.requested_backend == "auto":
            return StepBackend("torch")
        return self.backend

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str = "cpu",
        num_threads: int | None = 1,
        backend: str = "auto",
    ) -> Generator:
        """Load a checkpoint folder; ``None`` loads the model bundled with the package.

        A config that does not fit its weights or cannot be allocated is refused as a
        :class:`BadCheckpointError` naming the folder.
        """
        check_backend(backend)  # before the model loads
        # The checkpoint layer trusts config.json's shapes; what they break is named here.
        try:
            ckpt = load_checkpoint(path, device=device)
        except (RuntimeError, MemoryError, AttributeError, TypeError, ValueError) as err:
            raise _load_failure(path, err) from None
        return cls(ckpt.model, ckpt.tokenizer, ckpt.path, ckpt.checksum, num_threads, backend)

    def encode_prompt(
        self,
        prompt: symusic.Score | None,
        prompt_notes: int | None = None,
        prompt_name: str | None = None,
    ) -> tuple[list[int], int, np.ndarray]:
        """Ids of the prompt's first ``prompt_notes`` notes (all when None), their count and rows.

        ``prompt_name`` (the prompt's file) starts the error for a prompt without notes.
        """
        return encode_prompt(self.tokenizer, prompt, prompt_notes, prompt_name)

    @torch.inference_mode()
    def generate(
        self,
        prompt: symusic.Score | str | os.PathLike[str] | None = None,
        prompt_notes: int | None = None,
        config: GenerationConfig | None = None,
        callback: Callback | None = None,
        prompt_name: str | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Generate new notes after the prompt (a Score or a MIDI path); ``params`` override
        ``config``'s fields.

        ``callback(done, target)`` is called after every token with progress in
        notes (or grid steps when ``bars`` is set); returning True cancels. ``prompt_name``
        (e.g. its file) names the prompt in errors; a path names itself.
        """
        cfg = self._checked(config, params, callback)
        score = as_score(prompt)
        prompt_ids, n_prompt, _ = self.encode_prompt(
            score, prompt_notes, prompt_name or path_name(prompt)
        )
        warnings = long_prompt_warnings(prompt_ids, self.model.cfg.context)
        bpm = cfg.bpm or (score_bpm(score) if score is not None else 120.0)
        if cfg.seconds is not None:  # whole bars at the output's tempo
            cfg = replace(cfg, bars=bars_for_seconds(cfg.seconds, bpm))
        rules = self._rules(cfg, score) + self._note_rules(cfg, prompt_ids, "max_copy" in params)
        decoded, seconds, backend = self._decode(prompt_ids, cfg, callback, rules)
        result = continuation_result(
            self.tokenizer, prompt_ids, n_prompt, decoded, seconds, cfg, bpm, warnings
        )
        result.backend = backend
        return result

    @torch.inference_mode()
    def infill(
        self,
        score: symusic.Score | str | os.PathLike[str],
        bars: tuple[int, int] = (5, 8),
        config: GenerationConfig | None = None,
        callback: Callback | None = None,
        prompt_name: str | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Regenerate bars ``first..last`` (1-based, inclusive, 4/4) of ``score`` (a Score or a
        MIDI path) and keep every other note; ``params`` override ``config``'s fields.

        Any search and rule applies; the length knobs (``notes``, ``bars``) and
        ``stop_at_eos`` are overridden: the fill is as long as the span and ends exactly
        at its end (docs/ARCHITECTURE.md, "Infilling"). Notes held into the span are
        trimmed at its start. The model must have been trained for it (``--fim-rate``).
        ``callback(done, total)`` gets the steps of the span filled so far and its length.
        """
        cfg = self._checked(config, params, callback)
        check_infill_model(self.tokenizer, str(self.checkpoint or "the model"))
        piece = as_score(score)
        if piece is None:
            raise BadParameterError("give the piece whose bars to regenerate", field="score")
        name = prompt_name or path_name(score)
        grid = self.encode_prompt(piece, None, name)[2]
        plan = plan_infill(grid, bars, cfg, self.tokenizer, self.model.cfg.context)
        # The grammar restarts its clock at the span (MIDDLE): a chart starts at the span's first bar.
        before = plan.prompt.ids[: plan.prompt.ids.index(GAP)]  # the notes before the span
        warnings = list(plan.warnings)
        rules = [
            *self._rules(plan.config, None),
            *self._note_rules(plan.config, before, "max_copy" in params),
            plan.rule,
        ]
        decoded, seconds, backend = self._decode(plan.prompt.ids, plan.config, callback, rules)
        bpm = cfg.bpm or score_bpm(piece)
        return GenerationResult(
            **plan.result_fields(decoded.ids, bpm),
            seconds=seconds,
            tokens_per_second=decode_rate(decoded, seconds),
            stop_reason=decoded.stop_reason,
            config=plan.config,
            bpm=bpm,
            warnings=warnings,
            backend=backend,
        )

    def _checked(
        self, config: GenerationConfig | None, params: dict[str, Any], callback: object
    ) -> GenerationConfig:
        """The config a call asks for, and its callback and top-k offset, checked."""
        cfg = _config(config, params).resolved(isinstance(self.tokenizer, PairTokenizer))
        if callback is not None and not callable(callback):
            raise BadParameterError("must be a function or None", field="callback")
        check_candidates(self.tokenizer, cfg)
        return cfg

    def _decode(
        self, ids: list[int], cfg: GenerationConfig, callback: Callback | None, rules: list[Rule]
    ) -> tuple[Decoded, float, str]:
        """Run ``cfg``'s search after ``ids``: what it decoded, its seconds and its backend.

        The backend and the rules are ready before the clock starts: the time is decoding's.
        """
        run = beam_search if cfg.search == "beam" else sample
        step = self._step(cfg)
        decoder = step.decoder(self.model)
        t0 = time.perf_counter()
        with torch_threads(self.num_threads):
            decoded = run(self.model, self.tokenizer, ids, cfg, callback, rules=rules,
                          decoder=decoder)  # fmt: skip
        return decoded, time.perf_counter() - t0, step.name

    def _rules(self, cfg: GenerationConfig, prompt: symusic.Score | None) -> list[Rule]:
        """The music rules beyond the grammar's own that ``cfg`` asks for, as masks."""
        return chord_and_ending_rules(cfg, self.tokenizer, prompt)

    def _note_rules(
        self, cfg: GenerationConfig, prompt_ids: list[int], explicit: bool
    ) -> list[Rule]:
        """The copy guard and repetition rules; ``explicit``: ``max_copy`` was given by name."""
        pairs = isinstance(self.tokenizer, PairTokenizer)
        check_pairs_encoding(cfg, pairs)
        guard = None
        if cfg.max_copy:
            asked = explicit or cfg.max_copy != DEFAULT_MAX_COPY
            guard = self.copy_guard(cfg.max_copy, asked, pairs)
        return note_rules(cfg, prompt_ids, guard)

    @cached_property
    def training_notes(self) -> TrainingNotes | None:
        """The checkpoint's training notes (its memorisation index), read once; None: it has none."""
        return checkpoint_training_notes(self.checkpoint)

    @cached_property
    def _copy_guards(self) -> dict[int, CopyGuard]:
        return {}  # by max_copy: building one hashes every training window

    def copy_guard(self, max_copy: int, asked: bool, pairs: bool = True) -> CopyGuard | None:
        """The guard for ``max_copy``; without an index (or the pairs encoding) it is an error
        if ``asked``, else the guard is silently off: the default must not break, or nag about,
        a model trained without an index (the sidecar then reports no copies either)."""
        notes = self.training_notes if pairs else None
        if notes is None:
            why = (
                f"has no memorisation index ({INDEX_FILE})" if pairs else "lacks the pairs encoding"
            )
            where = self.checkpoint or "the model"
            if asked:
                raise BadParameterError(
                    f"{where} {why} to check copies against (0 turns the guard off)",
                    field="max_copy",
                )
            return None
        if max_copy not in self._copy_guards:
            self._copy_guards[max_copy] = CopyGuard(notes, max_copy)
        return self._copy_guards[max_copy]
