"""The decoding loops: one for greedy / top-k / top-p, one for batched beam search.

Both use the same grammar masks and the same creativity bias, so beam width 1
and top-k with k=1 give exactly the greedy piece.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tunesmith.generation import processors as P
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.decoded import Decoded
from tunesmith.generation.grammar import Grammar, Rule
from tunesmith.generation.sampler import Sampler, make_sampler
from tunesmith.generation.sequences import Sequences
from tunesmith.model.fused_step import FusedDecoder
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.midi_io import STEPS_PER_BAR

if TYPE_CHECKING:  # the beam loop and the torch step import torch when they run
    import torch

    from tunesmith.model.decode import DecodeStep
    from tunesmith.model.transformer import Transformer

Callback = Callable[[int, int], "bool | None"]


def _target(cfg: GenerationConfig) -> int:
    return cfg.notes if cfg.bars is None else cfg.bars * STEPS_PER_BAR  # type: ignore[return-value]


def _max_tokens(cfg: GenerationConfig) -> int:
    # A safety net only: the grammar makes every piece reach its target.
    return 4 * (cfg.notes or 0) + 200 * (cfg.bars or 0) + 64


class LogitsPipeline:
    """Rules' logits adjustments, the grammar mask, the creativity bias, the search's transform."""

    def __init__(
        self, tokenizer: Tokenizer, cfg: GenerationConfig, rules: Sequence[Rule] = ()
    ) -> None:
        self.cfg = cfg
        self.adjusters = [r for r in rules if isinstance(r, P.LogitsRule)]
        is_rest = tokenizer.kinds == TokenKind.SEPARATOR
        self.bias = P.rest_bias(is_rest, cfg.creativity) if cfg.creativity else None
        self.k = np.array([cfg.top_k_notes, cfg.top_k_durations])

    def constrained(self, logits: np.ndarray, grammar: Grammar) -> np.ndarray:
        """Masked and biased logits ``(B, V)`` float32: what every search ranks."""
        logits = np.asarray(logits, dtype=np.float32)
        for rule in self.adjusters:  # e.g. the repetition penalty, on the raw logits as in HF
            logits = rule.adjust_logits(logits)
        masked = P.mask(logits, grammar.allowed())
        if self.bias is None:
            return masked
        biased = masked + self.bias
        # A bias that forbids everything (creativity 1000 where only a rest is allowed) yields to the grammar.
        dead = np.isinf(biased).all(axis=-1, keepdims=True)
        return np.where(dead, masked, biased)

    def pick(self, logits: np.ndarray, grammar: Grammar, sampler: Sampler) -> np.ndarray:
        """``(B,)`` the ids the search takes after the constrained ``logits``."""
        cfg = self.cfg
        if cfg.search == "greedy":
            return P.pick_greedy(logits)
        logits = P.temperature(logits, cfg.temperature)
        if cfg.search == "top_k":
            k = self.k[grammar.next_is_duration().astype(np.int64)]
            logits = P.top_k(logits, k, cfg.top_k_offset)
        else:
            logits = P.top_p(logits, cfg.top_p)
        return sampler.pick(logits)


def _start(
    model: Transformer | None,
    tokenizer: Tokenizer,
    prompt: list[int],
    cfg: GenerationConfig,
    decoder: DecodeStep | FusedDecoder | None,
    rules: Sequence[Rule],
) -> tuple[Sequences, LogitsPipeline]:
    """What both loops begin with: one row after the prompt, and the logits pipeline."""
    if decoder is None:
        from tunesmith.model.decode import Decoder

        decoder = Decoder(model)  # type: ignore[arg-type]
    seqs = Sequences(decoder, tokenizer, prompt, cfg, rules)
    return seqs, LogitsPipeline(tokenizer, cfg, rules)


def sample(
    model: Transformer | None,
    tokenizer: Tokenizer,
    prompt: list[int],
    cfg: GenerationConfig,
    callback: Callback | None,
    decoder: DecodeStep | FusedDecoder | None = None,
    rules: Sequence[Rule] = (),
    sampler: str = "torch",
) -> Decoded:
    """Greedy, top-k or top-p decoding of one piece (``decoder``: default the fast step of
    ``model``, which may then be None; ``sampler``: who draws the ids,
    :mod:`tunesmith.generation.sampler`)."""
    seqs, pipeline = _start(model, tokenizer, prompt, cfg, decoder, rules)
    rng = make_sampler(sampler, cfg.seed)
    grammar, target = seqs.grammar, _target(cfg)
    for _ in range(_max_tokens(cfg)):
        token = pipeline.pick(pipeline.constrained(seqs.logits(), grammar), grammar, rng)
        if int(token[0]) == tokenizer.eos_id:
            return Decoded([*seqs.new_ids(0), tokenizer.eos_id], "eos")
        seqs.append(token)
        if grammar.done(cfg)[0]:
            return Decoded(seqs.new_ids(0), "length")
        if callback is not None and callback(int(grammar.progress(cfg)[0]), target):
            return Decoded(seqs.new_ids(0), "cancelled")
    return Decoded(seqs.new_ids(0), "length")


@dataclass
class Extensions:
    """A beam step's choice: row ``rows[i]`` continues with ``tokens[i]`` at ``scores[i]``."""

    rows: list[int]
    tokens: list[int]
    scores: list[float]
    ended: list[tuple[int, float]]  # (row, score) of the better candidates that end it (EOS)

    def fill(self, width: int) -> None:
        """Dead rows fill the batch to ``width``; their score keeps them out."""
        while len(self.rows) < width:
            self.rows.append(self.rows[0])
            self.tokens.append(self.tokens[0])
            self.scores.append(float("-inf"))


def best_extensions(
    scores: torch.Tensor, logp: torch.Tensor, width: int, eos_id: int
) -> Extensions:
    """The ``width`` best (row, token) continuations by total log-probability.

    EOS candidates ranked among them are set apart in ``ended``.
    """
    total = (scores[:, None] + logp).view(-1)
    cand_scores, cand = total.topk(2 * width)
    ext = Extensions([], [], [], [])
    for s, c in zip(cand_scores.tolist(), cand.tolist(), strict=True):
        if s == float("-inf") or len(ext.rows) == width:
            break
        row, tok = divmod(c, logp.shape[1])
        if tok == eos_id:
            ext.ended.append((row, s))
            continue
        ext.rows.append(row), ext.tokens.append(tok), ext.scores.append(s)
    return ext


class Finished:
    """Ended beams and their scores, normalised by length: ``score / length ** length_penalty``."""

    def __init__(self, length_penalty: float) -> None:
        self.length_penalty = length_penalty
        self.items: list[tuple[float, list[int], str]] = []

    def add(self, score: float, ids: list[int], reason: str) -> None:
        if self.length_penalty:
            score = score / (len(ids) ** self.length_penalty)
        self.items.append((score, ids, reason))

    def best(self) -> Decoded:
        _, ids, reason = max(self.items, key=lambda f: f[0])
        return Decoded(ids, reason)


def beam_search(
    model: Transformer,
    tokenizer: Tokenizer,
    prompt: list[int],
    cfg: GenerationConfig,
    callback: Callback | None,
    decoder: DecodeStep | None = None,
    rules: Sequence[Rule] = (),
) -> Decoded:
    """Beam search: ``beam_width`` rows decoded as one batch over a shared-prompt cache."""
    import torch

    W, eos = cfg.beam_width, tokenizer.eos_id
    seqs, pipeline = _start(model, tokenizer, prompt, cfg, decoder, rules)
    seqs.fork(W)
    scores = torch.full((W,), float("-inf"))
    scores[0] = 0.0  # the rows start identical: expand only one
    finished, target = Finished(cfg.length_penalty), _target(cfg)
    for _ in range(_max_tokens(cfg)):
        constrained = pipeline.constrained(seqs.logits(), seqs.grammar)
        logp = torch.log_softmax(torch.from_numpy(constrained), dim=-1)
        ext = best_extensions(scores, logp, W, eos)
        for row, s in ext.ended:
            finished.add(s, [*seqs.new_ids(row), eos], "eos")
        if len(finished.items) >= W or not ext.rows:
            break
        ext.fill(W)
        seqs.reorder(np.array(ext.rows, dtype=np.int64))
        seqs.append(np.array(ext.tokens, dtype=np.int64))
        scores = torch.tensor(ext.scores)
        for r in np.flatnonzero(seqs.grammar.done(cfg) & np.isfinite(scores.numpy())):
            finished.add(float(scores[r]), seqs.new_ids(r), "length")
            scores[r] = float("-inf")
        if len(finished.items) >= W or torch.isinf(scores).all():
            break
        if callback is not None and callback(int(seqs.grammar.progress(cfg).max()), target):
            return Decoded(seqs.new_ids(int(scores.argmax())), "cancelled")
    if not finished.items:  # the safety net ran out: take the best live row
        return Decoded(seqs.new_ids(int(scores.argmax())), "length")
    return finished.best()
