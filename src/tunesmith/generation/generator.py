"""``Generator``: model + tokenizer + device, the one object every front end calls."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import symusic

from tunesmith.errors import BadParameterError
from tunesmith.generation.config import GenerationConfig, resolve_config
from tunesmith.generation.copyguard import CopyGuard
from tunesmith.generation.decoded import Decoded
from tunesmith.generation.ending import bars_for_seconds
from tunesmith.generation.grammar import Rule
from tunesmith.generation.harmony import chord_and_ending_rules
from tunesmith.generation.infill import check_infill_model, plan_infill
from tunesmith.generation.model_source import (
    cached_export,
    load_model,
    model_on_demand,
    torch_decoding,
)
from tunesmith.generation.note_rules import DEFAULT_MAX_COPY, check_pairs_encoding, note_rules
from tunesmith.generation.pitch_masks import check_candidates
from tunesmith.generation.prompt import as_score, encode_prompt, long_prompt_warnings, path_name
from tunesmith.generation.result import GenerationResult, continuation_result, decode_rate
from tunesmith.generation.search import Callback, beam_search, sample
from tunesmith.generation.training_notes import (
    INDEX_FILE,
    TrainingNotes,
    checkpoint_training_notes,
)
from tunesmith.model.backend_names import check_backend
from tunesmith.model.config import ModelConfig
from tunesmith.model.step_backend import StepBackend
from tunesmith.tokenization.base import Tokenizer
from tunesmith.tokenization.midi_io import score_bpm
from tunesmith.tokenization.pairs import GAP, PairTokenizer

if TYPE_CHECKING:
    from tunesmith.model.transformer import Transformer


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

        One thread is this class's default, safe where generations run side by side (the
        web app's workers share one generator) or the machine is busy: threads that spin
        waiting for each other can then be far slower. ``tunesmith generate``, ``infill``
        and ``evaluate`` decode one piece at a time with two when a second core is idle
        (``--threads``, see :func:`~tunesmith.model.backend_names.decode_threads`): on the
        onnx path that nearly doubles the speed, on the torch step it gains little
        (``python -m benchmarks.generation --threads N`` measures both). The thread count
        changes the speed only: the same seed gives the same piece.
        ``backend``: the decoding step, ``auto`` (ONNX Runtime when installed, see
        :mod:`tunesmith.model.backends`), ``torch`` or ``onnx``; one that cannot run here
        is refused with a :class:`BadParameterError`. A model with a non-finite weight is
        refused too.
        """
        from tunesmith.model.checkpoint import check_finite_weights

        check_finite_weights(model, str(checkpoint) if checkpoint else "the model")
        self._setup(model.eval(), model.cfg, tokenizer, checkpoint, checksum, num_threads, backend)

    def _setup(
        self, model: Transformer | None, cfg: ModelConfig, tokenizer: Tokenizer,
        checkpoint: Path | None, checksum: str | None, num_threads: int | None, backend: str,
    ) -> None:  # fmt: skip
        self._model = model  # None: loaded on first use (see ``model``)
        self.model_cfg = cfg
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.checksum = checksum
        self.num_threads = num_threads
        self.requested_backend = check_backend(backend)
        self._backend: StepBackend | None = None  # resolved at the first generation
        # Who draws sampled ids: None, the backend's own (numpy on the fused ONNX step);
        # "torch" replays a record made before the numpy sampler (generation/sampler.py).
        self.sampler: str | None = None

    @property
    def model(self) -> Transformer:
        """The torch model; a generator started on a cached export loads it on first use."""
        if self._model is None:
            self._model = model_on_demand(None, self.checkpoint).eval()
        return self._model

    @property
    def backend(self) -> StepBackend:
        """The decoding step in use, resolved (and for onnx, loaded) on first use."""
        if self._backend is None:
            from tunesmith.model.backends import open_backend

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
        cached = cached_export(path, device, backend, num_threads)
        if cached is not None:  # the torch model loads when a generation needs it
            info, step = cached
            gen = cls.__new__(cls)
            gen._setup(None, info.cfg, info.tokenizer, info.path, info.checksum, num_threads,
                       backend)  # fmt: skip
            gen._backend = step
            return gen
        ckpt = load_model(path, device)
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
        warnings = long_prompt_warnings(prompt_ids, self.model_cfg.context)
        bpm = cfg.bpm or (score_bpm(score) if score is not None else 120.0)
        if cfg.seconds is not None:  # whole bars at the output's tempo
            cfg = replace(cfg, bars=bars_for_seconds(cfg.seconds, bpm))
        rules = self._rules(cfg, score) + self._note_rules(cfg, prompt_ids, "max_copy" in params)
        decoded, seconds, backend, sampler = self._decode(prompt_ids, cfg, callback, rules)
        result = continuation_result(
            self.tokenizer, prompt_ids, n_prompt, decoded, seconds, cfg, bpm, warnings
        )
        result.backend, result.sampler = backend, sampler
        return result

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
        plan = plan_infill(grid, bars, cfg, self.tokenizer, self.model_cfg.context)
        # The grammar restarts its clock at the span (MIDDLE): a chart starts at the span's first bar.
        before = plan.prompt.ids[: plan.prompt.ids.index(GAP)]  # the notes before the span
        warnings = list(plan.warnings)
        rules = [
            *self._rules(plan.config, None),
            *self._note_rules(plan.config, before, "max_copy" in params),
            plan.rule,
        ]
        decoded, seconds, backend, sampler = self._decode(
            plan.prompt.ids, plan.config, callback, rules
        )
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
            sampler=sampler,
        )

    def _checked(
        self, config: GenerationConfig | None, params: dict[str, Any], callback: object
    ) -> GenerationConfig:
        """The config a call asks for, and its callback and top-k offset, checked."""
        cfg = resolve_config(config, params).resolved(isinstance(self.tokenizer, PairTokenizer))
        if callback is not None and not callable(callback):
            raise BadParameterError("must be a function or None", field="callback")
        check_candidates(self.tokenizer, cfg)
        return cfg

    def _decode(
        self, ids: list[int], cfg: GenerationConfig, callback: Callback | None, rules: list[Rule]
    ) -> tuple[Decoded, float, str, str]:
        """Run ``cfg``'s search after ``ids``: what it decoded, its seconds, its backend and
        its sampler (:mod:`tunesmith.generation.sampler`).

        The backend and the rules are ready before the clock starts: the time is decoding's.
        """
        step = self._step(cfg)
        numpy_path = cfg.search != "beam" and self.sampler != "torch"
        fused = step.fused_decoder(self.model_cfg) if numpy_path else None
        if fused is not None:  # one row on the fused ONNX graph: numpy only, no torch
            t0 = time.perf_counter()
            decoded = sample(None, self.tokenizer, ids, cfg, callback, fused, rules, "numpy")
            return decoded, time.perf_counter() - t0, step.name, "numpy"
        run = beam_search if cfg.search == "beam" else sample
        decoder = step.decoder(self.model)
        t0 = time.perf_counter()
        with torch_decoding(self.num_threads):
            decoded = run(self.model, self.tokenizer, ids, cfg, callback, rules=rules,
                          decoder=decoder)  # fmt: skip
        return decoded, time.perf_counter() - t0, step.name, "torch"

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
