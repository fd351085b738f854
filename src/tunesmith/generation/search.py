"""The decoding loops: one for greedy / top-k / top-p, one for batched beam search.

Both use the same grammar masks and the same creativity bias, so beam width 1
and top-k with k=1 give exactly the greedy piece.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tunesmith.generation import processors as P
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.grammar import SeedGrammar, TokenKindGrammar, make_grammar
from tunesmith.generation.window import CachedWindow
from tunesmith.model.transformer import Transformer
from tunesmith.tokenization.base import Tokenizer, TokenKind
from tunesmith.tokenization.midi_io import STEPS_PER_BAR

Callback = Callable[[int, int], "bool | None"]


@dataclass
class Decoded:
    """New ids after the prompt and why decoding stopped."""

    ids: list[int]
    stop_reason: str  # "eos" | "length" | "cancelled"


def _target(cfg: GenerationConfig) -> int:
    return cfg.notes if cfg.bars is None else cfg.bars * STEPS_PER_BAR  # type: ignore[return-value]


def _max_tokens(cfg: GenerationConfig) -> int:
    # A safety net only: the grammar makes every piece reach its target.
    return 4 * (cfg.notes or 0) + 200 * (cfg.bars or 0) + 64


class LogitsPipeline:
    """Grammar mask, then the creativity bias, then the search's own transform."""

    def __init__(self, tokenizer: Tokenizer, cfg: GenerationConfig) -> None:
        self.cfg = cfg
        is_rest = torch.from_numpy(tokenizer.kinds == TokenKind.SEPARATOR)
        self.bias = P.rest_bias(is_rest, cfg.creativity) if cfg.creativity else None
        self.k = torch.tensor([cfg.top_k_notes, cfg.top_k_durations])

    def constrained(
        self, logits: torch.Tensor, grammar: SeedGrammar | TokenKindGrammar
    ) -> torch.Tensor:
        """Masked and biased logits: what every search ranks."""
        masked = P.mask(logits.float(), grammar.allowed())
        if self.bias is None:
            return masked
        biased = masked + self.bias
        # A bias that forbids everything (creativity 1000 where only a rest is allowed) yields to the grammar.
        dead = torch.isinf(biased).all(dim=-1, keepdim=True)
        return torch.where(dead, masked, biased)

    def pick(
        self, logits: torch.Tensor, grammar: SeedGrammar | TokenKindGrammar, rng: torch.Generator
    ) -> torch.Tensor:
        cfg = self.cfg
        if cfg.search == "greedy":
            return P.pick_greedy(logits)
        logits = P.temperature(logits, cfg.temperature)
        if cfg.search == "top_k":
            k = self.k[torch.from_numpy(grammar.next_is_duration().astype(np.int64))]
            logits = P.top_k(logits, k, cfg.top_k_offset)
        else:
            logits = P.top_p(logits, cfg.top_p)
        return P.pick_sample(logits, rng)


def _start(
    model: Transformer, tokenizer: Tokenizer, prompt: list[int], cfg: GenerationConfig, rows: int
) -> tuple[SeedGrammar | TokenKindGrammar, LogitsPipeline, CachedWindow]:
    """What both loops begin with: the grammar after the prompt, the pipeline, the window."""
    grammar = make_grammar(tokenizer, cfg, rows)
    grammar.feed_prompt(prompt)
    return grammar, LogitsPipeline(tokenizer, cfg), CachedWindow(model, prompt, rows=rows)


def sample(
    model: Transformer,
    tokenizer: Tokenizer,
    prompt: list[int],
    cfg: GenerationConfig,
    callback: Callback | None,
) -> Decoded:
    """Greedy, top-k or top-p decoding of one piece."""
    grammar, pipeline, window = _start(model, tokenizer, prompt, cfg, 1)
    rng = torch.Generator().manual_seed(cfg.seed)
    logits, out, target = window.logits, [], _target(cfg)
    for _ in range(_max_tokens(cfg)):
        token = pipeline.pick(pipeline.constrained(logits, grammar), grammar, rng)
        t = int(token[0])
        out.append(t)
        if t == tokenizer.eos_id:
            return Decoded(out, "eos")
        grammar.update(token.numpy())
        if grammar.done(cfg)[0]:
            return Decoded(out, "length")
        if callback is not None and callback(int(grammar.progress(cfg)[0]), target):
            return Decoded(out, "cancelled")
        logits = window.append(token)
    return Decoded(out, "length")


def beam_search(
    model: Transformer,
    tokenizer: Tokenizer,
    prompt: list[int],
    cfg: GenerationConfig,
    callback: Callback | None,
) -> Decoded:
    """Beam search: ``beam_width`` rows decoded as one batch over a shared-prompt cache."""
    W = cfg.beam_width
    grammar, pipeline, window = _start(model, tokenizer, prompt, cfg, W)
    scores = torch.full((W,), float("-inf"))
    scores[0] = 0.0  # the rows start identical: expand only one
    seqs = torch.zeros((W, 0), dtype=torch.long)
    finished: list[tuple[float, list[int], str]] = []
    target, logits = _target(cfg), window.logits

    def norm(score: float, length: int) -> float:
        return score / (length**cfg.length_penalty) if cfg.length_penalty else score

    for _ in range(_max_tokens(cfg)):
        logp = torch.log_softmax(pipeline.constrained(logits, grammar), dim=-1)  # (W, V)
        total = (scores[:, None] + logp).view(-1)
        cand_scores, cand = total.topk(2 * W)
        rows, toks, new_scores = [], [], []
        for s, c in zip(cand_scores.tolist(), cand.tolist(), strict=True):
            if s == float("-inf") or len(rows) == W:
                break
            row, tok = divmod(c, logp.shape[1])
            if tok == tokenizer.eos_id:
                finished.append((norm(s, seqs.shape[1] + 1), [*seqs[row].tolist(), tok], "eos"))
                continue
            rows.append(row), toks.append(tok), new_scores.append(s)
        if len(finished) >= W or not rows:
            break
        while len(rows) < W:  # dead rows fill the batch; their score keeps them out
            rows.append(rows[0]), toks.append(toks[0]), new_scores.append(float("-inf"))
        rows_t, toks_t = torch.tensor(rows), torch.tensor(toks)
        window.reorder(rows_t)
        grammar.reorder(np.array(rows))
        grammar.update(toks_t.numpy())
        seqs = torch.cat([seqs[rows_t], toks_t[:, None]], dim=1)
        scores = torch.tensor(new_scores)
        for r in np.flatnonzero(grammar.done(cfg) & np.isfinite(scores.numpy())):
            finished.append((norm(float(scores[r]), seqs.shape[1]), seqs[r].tolist(), "length"))
            scores[r] = float("-inf")
        if len(finished) >= W or torch.isinf(scores).all():
            break
        if callback is not None and callback(int(grammar.progress(cfg).max()), target):
            best = int(scores.argmax())
            return Decoded(seqs[best].tolist(), "cancelled")
        logits = window.append(toks_t)
    if not finished:  # the safety net ran out: take the best live row
        best = int(scores.argmax())
        return Decoded(seqs[best].tolist(), "length")
    _, ids, reason = max(finished, key=lambda f: f[0])
    return Decoded(ids, reason)
