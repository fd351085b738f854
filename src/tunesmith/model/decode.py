"""The decoding hot path: one new token per row through the KV cache, as an explicit step.

:class:`Decoder` computes what ``Transformer.forward(tokens[:, None], cache=cache)``
computes (``tests/test_model.py`` checks that they agree), with fewer, cheaper
operations. At batch 1 a step is bound by memory traffic and by the per-operation
overhead of eager PyTorch, not by arithmetic (``benchmarks/generation.py`` measures
it), hence:

- weights copied once per decoder, transposed to ``(in, out)``: ``x @ W^T`` streams
  such a copy faster than ``F.linear`` streams ``W``; with two threads they are
  split into column halves ``(2, in, out/2)``, one per thread through ``bmm`` (MKL
  hardly splits products this small itself);
- no module calls, no Dropout/Identity; the qkv product is written into a
  preallocated buffer whose key/value part goes into the cache in one copy;
- attention reads the cache in place (head-major, contiguous per head).

:class:`ReferenceDecoder` takes the same step through ``forward`` itself. Both
satisfy :class:`DecodeStep`, the one thing the decoding window needs; another
backend (an exported or compiled step) is one more class with that method.

Shapes: B rows, C d_model, H heads, D head_dim, V vocab, m own tokens, P shared tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from tunesmith.model.cache import KVCache
from tunesmith.model.transformer import Transformer

# The CPU flash-attention kernel behind F.scaled_dot_product_attention; it also
# returns each query's log-sum-exp, so attention over the shared tokens (all rows
# at once) and over each row's own tokens merge exactly. Absent: a manual softmax.
_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)

Pair = tuple[torch.Tensor, torch.Tensor]


class DecodeStep(Protocol):
    """What decoding needs besides ``model.forward``: logits after one more token per row."""

    model: Transformer

    def step(
        self, tokens: torch.Tensor, cache: KVCache, bar_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, V)`` of the next token after ``tokens`` ``(B,)``; the cache takes them.

        ``bar_pos`` ``(B,)``: the tokens' positions in the bar, for a model with
        ``cfg.bar_positions`` (as ``Transformer.forward`` takes them).
        """
        ...


def check_context(model: Transformer, cache: KVCache) -> None:
    """Refuse a step that would take the sequence past the model's context."""
    if cache.length + 1 > model.cfg.context:
        raise ValueError(
            f"sequence of {cache.length + 1} tokens exceeds the context of {model.cfg.context}"
        )


def check_step(
    model: Transformer, cache: KVCache, tokens: torch.Tensor, bar_pos: torch.Tensor | None
) -> None:
    """What every fast step refuses: a sequence past the context, a cache without room, and
    bar positions given to a model without them (or missing from one with them)."""
    check_context(model, cache)
    model.check_bar_pos(bar_pos, tuple(tokens.shape))
    cache.check_room(1)


class ReferenceDecoder:
    """The step through ``Transformer.forward``: slower, and the yardstick of the others."""

    def __init__(self, model: Transformer) -> None:
        self.model = model

    def step(
        self, tokens: torch.Tensor, cache: KVCache, bar_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, V)`` of the next token after ``tokens`` ``(B,)``; the cache takes them."""
        check_context(self.model, cache)
        pos = {} if bar_pos is None else {"bar_pos": bar_pos[:, None]}
        return self.model(tokens[:, None], cache=cache, **pos)[0][:, -1]


def _detach(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


class StepWeights:
    """The model's weights as the step reads them: copies, so they must not outlive a
    change of the model's weights (which a cache's keys and values would not survive either).
    """

    def __init__(self, model: Transformer, split: int) -> None:
        cfg = model.cfg
        self.split, self.post_norm = split, cfg.style == "original"
        self.C, self.H, self.D = cfg.d_model, cfg.n_head, cfg.head_dim
        self.eps = model.blocks[0].norm1.eps or 1e-6
        self.layers = [
            (*self._linear(blk.attn.qkv), *self._linear(blk.attn.proj),
             *self._linear(blk.ff.up), *self._linear(blk.ff.down),
             _detach(blk.norm1.weight), _detach(getattr(blk.norm1, "bias", None)),
             _detach(blk.norm2.weight), _detach(getattr(blk.norm2, "bias", None)))
            for blk in model.blocks
        ]  # fmt: skip
        self.head = self._linear(model.head)
        self.final = _detach(getattr(model.final_norm, "weight", None))
        self.embed = model.embed.weight.detach()
        bar = getattr(model, "bar_embed", None)
        self.bar = None if bar is None else bar.weight.detach()  # (16, C)
        self.pos: torch.Tensor | None = None
        self.rope: Pair | None = None
        if self.post_norm:
            self.pos = model.pos_table
        else:  # rotate pairs (first half, second half): x * [cos, cos] + [x2, x1] * [-sin, sin]
            cos, sin = model.rope_cos, model.rope_sin  # (context, D/2)
            self.rope = (torch.cat([cos, cos], -1), torch.cat([-sin, sin], -1))  # (context, D)

    def _linear(self, linear: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight ``(in, out)`` or ``(2, in, out/2)``; bias ``(out,)`` or ``(2, 1, out/2)``."""
        w, b = linear.weight.detach().t(), linear.bias
        if self.split > 1:
            w = w.reshape(w.shape[0], self.split, -1).transpose(0, 1)
            b = None if b is None else b.reshape(self.split, 1, -1)
        return w.contiguous(), _detach(b)


def _split_for_threads(model: Transformer) -> int:
    """2 (one column half of every product per thread) with two threads, else 1."""
    cfg = model.cfg
    outs = (3 * cfg.d_model, cfg.d_model, cfg.d_ff, cfg.vocab_size)
    return 2 if torch.get_num_threads() >= 2 and all(n % 2 == 0 for n in outs) else 1


class StepBuffers:
    """The qkv product of one layer for ``batch`` rows, and views of its parts."""

    def __init__(self, like: torch.Tensor, batch: int, C: int, H: int, D: int) -> None:
        self.batch = batch
        self.qkv = like.new_empty(batch, 3 * C)  # [q | k | v]
        self.q = self.qkv[:, :C].view(batch, H, 1, D)
        self.qk = self.qkv[:, : 2 * C].view(batch, 2, H, D)
        self.kv_new = self.qkv.view(batch, 3, H, D)[:, 1:].transpose(0, 1)  # (2, B, H, D)
        self.v_new = self.qkv[:, 2 * C :].view(batch, H, D)


@dataclass
class LayerCache:
    """One layer's part of the cache as a step reads and writes it."""

    keys: torch.Tensor  # (B, H, m, D) live own keys, the new token's included
    values: torch.Tensor  # (B, H, m, D)
    slot: torch.Tensor  # (max_len, 2, B, H, D) token-major view: [own] takes the new k/v
    shared: Pair | None  # (1, H, P, D) keys and values of the shared segment


def _layer_caches(cache: KVCache) -> list[LayerCache]:
    """Every layer's live keys and values, as views taken once per step."""
    live = cache.kv[:, :, :, :, cache.own_start : cache.own_len + 1]
    keys, values = live[:, 0].unbind(0), live[:, 1].unbind(0)
    shared: list[Pair | None] = [None] * len(keys)
    if cache.shared is not None and cache.shared_len:
        sh = cache.shared[:, :, :, :, : cache.shared_len]  # (L, 2, 1, H, P, D)
        shared = list(zip(sh[:, 0].unbind(0), sh[:, 1].unbind(0), strict=True))
    return [
        LayerCache(k, v, slot, s)
        for k, v, slot, s in zip(keys, values, cache.token_views, shared, strict=True)
    ]


class Decoder:
    """The fast step: ``step(tokens, cache) -> logits``, for one decoding at a time.

    It keeps copies of the weights and buffers that every step reuses, so a
    decoding session makes its own (they are cheap next to the session) and
    does not share it between threads.
    """

    def __init__(self, model: Transformer) -> None:
        self.model = model
        self._weights: StepWeights | None = None
        self._buffers: StepBuffers | None = None

    def _prepare(self, batch: int) -> tuple[StepWeights, StepBuffers]:
        w = self._weights
        if w is None:  # laid out for the threads of the first step, then kept: one session
            w = self._weights = StepWeights(self.model, _split_for_threads(self.model))
        buf = self._buffers
        if buf is None or buf.batch != batch:
            buf = self._buffers = StepBuffers(w.embed, batch, w.C, w.H, w.D)
        return w, buf

    def step(
        self, tokens: torch.Tensor, cache: KVCache, bar_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, V)`` of the next token after ``tokens`` ``(B,)``; the cache takes them."""
        check_step(self.model, cache, tokens, bar_pos)
        w, buf = self._prepare(cache.batch)
        tokens = cache.to_storage_order(tokens)  # rows run in the cache's storage order
        t, own, C = cache.length, cache.own_len, w.C
        layer = _post_norm_layer if w.post_norm else _pre_norm_layer
        if w.post_norm:
            x = torch.add(w.pos[t], w.embed.index_select(0, tokens), alpha=math.sqrt(C))
            rope = None
        else:
            x = w.embed.index_select(0, tokens)  # (B, C)
            rope = (w.rope[0][t], w.rope[1][t])  # (D,) each
        if w.bar is not None and bar_pos is not None:
            x = x + w.bar.index_select(0, cache.to_storage_order(bar_pos))
        for p, lc in zip(w.layers, _layer_caches(cache), strict=True):
            x = layer(x, p, lc, own, buf, w, rope)
        cache.advance(1)
        if not w.post_norm:
            x = torch.rms_norm(x, (C,), w.final, w.eps)
        return cache.to_row_order(_linear(x, *w.head))  # (B, V)


def _post_norm_layer(
    x: torch.Tensor,
    p: tuple,
    lc: LayerCache,
    own: int,
    buf: StepBuffers,
    w: StepWeights,
    rope: Pair | None,
) -> torch.Tensor:
    """The original style's block: post-LayerNorm, ReLU feed-forward."""
    wqkv, bqkv, wp, bp, wu, bu, wd, bd, g1, b1, g2, b2 = p
    C, eps = w.C, w.eps
    _linear(x, wqkv, bqkv, out=buf.qkv)
    lc.slot[own] = buf.kv_new
    y = _attend(buf.q, lc.keys, lc.values, lc.shared)  # (B, C)
    x = torch.layer_norm(_linear(y, wp, bp).add_(x), (C,), g1, b1, eps)
    u = _linear(x, wu, bu).relu_()  # (B, d_ff)
    return torch.layer_norm(_linear(u, wd, bd).add_(x), (C,), g2, b2, eps)


def _pre_norm_layer(
    x: torch.Tensor,
    p: tuple,
    lc: LayerCache,
    own: int,
    buf: StepBuffers,
    w: StepWeights,
    rope: Pair | None,
) -> torch.Tensor:
    """The modern style's block: pre-norm RMSNorm, rotary positions, SwiGLU."""
    wqkv, _, wp, _, wu, _, wd, _, g1, _, g2, _ = p
    C, D, eps = w.C, w.D, w.eps
    cos, sin = rope  # type: ignore[misc]
    _linear(torch.rms_norm(x, (C,), g1, eps), wqkv, out=buf.qkv)
    qk = buf.qk  # (B, 2, H, D)
    qk = torch.addcmul(qk * cos, torch.cat([qk[..., D // 2 :], qk[..., : D // 2]], -1), sin)
    lc.slot[own, 0] = qk[:, 1]
    lc.slot[own, 1] = buf.v_new
    y = _attend(qk[:, 0].unsqueeze(2), lc.keys, lc.values, lc.shared)
    x = _linear(y, wp, x)  # x + attention
    g = _linear(torch.rms_norm(x, (C,), g2, eps), wu)  # (B, 2 * d_ff): [gate | value]
    f = g.shape[1] // 2
    return _linear(F.silu(g[:, :f]).mul_(g[:, f:]), wd, x)


def _linear(
    x: torch.Tensor,
    w: torch.Tensor,
    add: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``add + x @ w``: x ``(B, in)``; w ``(in, out)``, or split ``(S, in, out/S)``."""
    if w.dim() == 2:
        return torch.mm(x, w, out=out) if add is None else torch.addmm(add, x, w, out=out)
    S, B = w.shape[0], x.shape[0]
    xs = x.expand(S, B, -1)
    if add is not None and add.dim() == 2:  # a residual (B, out): its column blocks
        add = add.view(B, S, -1).transpose(0, 1)
    if B == 1:  # (S, 1, out/S) holds the column blocks of the (1, out) row one after another
        o = None if out is None else out.view(S, 1, -1)
        y = torch.bmm(xs, w, out=o) if add is None else torch.baddbmm(add, xs, w, out=o)
        return y.view(1, -1)
    y = torch.bmm(xs, w) if add is None else torch.baddbmm(add, xs, w)  # (S, B, out/S)
    if out is None:
        return y.transpose(0, 1).reshape(B, -1)
    out.view(B, S, -1).copy_(y.transpose(0, 1))
    return out


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shared: Pair | None) -> torch.Tensor:
    """One query per row: q ``(B, H, 1, D)``, own k/v ``(B, H, m, D)``, shared ``(1, H, P, D)``."""
    B = q.shape[0]
    if shared is None:
        return F.scaled_dot_product_attention(q, k, v).view(B, -1)
    pk, pv = shared
    qs = q.transpose(0, 2)  # (1, H, B, D): every row's query in one call that reads pk once
    if _FLASH is not None and q.device.type == "cpu":
        y_sh, lse_sh = _FLASH(qs, pk, pv)  # (1, H, B, D), (1, H, B)
        y_own, lse_own = _FLASH(q, k, v)  # (B, H, 1, D), (B, H, 1)
        share = torch.sigmoid(lse_sh.transpose(0, 2) - lse_own).unsqueeze(-1).to(y_own.dtype)
        return torch.lerp(y_own, y_sh.transpose(0, 2), share).reshape(B, -1)
    s_sh = torch.matmul(qs, pk.transpose(2, 3)).transpose(0, 2)  # (B, H, 1, P)
    s = torch.cat([s_sh, torch.matmul(q, k.transpose(2, 3))], -1)  # (B, H, 1, P + m)
    probs = torch.softmax(s * (q.shape[-1] ** -0.5), -1)
    P = pk.shape[2]
    y_sh = torch.matmul(probs[..., :P].transpose(0, 2), pv).transpose(0, 2)  # (B, H, 1, D)
    return (y_sh + torch.matmul(probs[..., P:], v)).reshape(B, -1)
