"""One new token per row through the KV cache: the decoding hot path.

At batch 1 a step is bound by memory traffic (13 MB of weights plus 12 KB of
keys/values per cached token, more than this CPU's share of L3, so much of it
comes from DRAM) and by per-op overhead (2-8 us per op called from Python; going
module by module cost ~1 ms per step in dispatch alone). So this path computes
what ``Transformer.forward`` computes for one token, with fewer, cheaper ops:

- weights copied once per cache, transposed to ``(in, out)``: ``x @ W^T`` streams
  such a copy ~1.3x faster here than ``F.linear`` streams ``W``; with two threads
  they are split into column halves ``(2, in, out/2)``, one per thread through
  ``bmm`` (MKL hardly splits products this small itself: greedy ~10% faster);
- no module calls, no Dropout/Identity; the qkv product is written into a
  preallocated buffer whose key/value part goes into the cache in one copy;
- attention reads the cache in place (head-major, contiguous per head).

Shapes: B rows, C d_model, H heads, D head_dim, V vocab, m own tokens, P shared tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from tunesmith.model.cache import KVCache

if TYPE_CHECKING:
    from tunesmith.model.transformer import Transformer

# The CPU flash-attention kernel behind F.scaled_dot_product_attention; it also
# returns each query's log-sum-exp, so attention over the shared tokens (all rows
# at once) and over each row's own tokens merge exactly. Absent: a manual softmax.
_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _d(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


class DecodePlan:
    """The weights as a decode step reads them, and its buffers, for ``batch`` rows.

    The weights are copies: a cache (which holds its plan) must not outlive a
    change of the model's weights, which its keys and values would not survive either.
    """

    def __init__(self, model: Transformer, batch: int, reuse: DecodePlan | None = None) -> None:
        cfg = model.cfg
        self.seed, self.batch = cfg.style == "seed", batch
        self.C, self.H, self.D, self.eps = cfg.d_model, cfg.n_head, cfg.head_dim, 1e-6
        outs = (3 * cfg.d_model, cfg.d_model, cfg.d_ff, cfg.vocab_size)
        split = torch.get_num_threads() >= 2 and all(n % 2 == 0 for n in outs)
        self.split = 2 if split else 1
        if reuse is not None and reuse.split == self.split:  # same weights: share the copies
            self.layers, self.head, self.final = reuse.layers, reuse.head, reuse.final
            self.embed, self.pos, self.rope = reuse.embed, reuse.pos, reuse.rope
        else:
            self._copy_weights(model)
        C, H, D = self.C, self.H, self.D
        self.qkv = self.embed.new_empty(batch, 3 * C)  # [q | k | v] of one layer
        self.q = self.qkv[:, :C].view(batch, H, 1, D)
        self.qk = self.qkv[:, : 2 * C].view(batch, 2, H, D)
        self.kv_new = self.qkv.view(batch, 3, H, D)[:, 1:].transpose(0, 1)  # (2, B, H, D)
        self.v_new = self.qkv[:, 2 * C :].view(batch, H, D)

    def _w(self, linear: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight ``(in, out)`` or ``(2, in, out/2)``; bias ``(out,)`` or ``(2, 1, out/2)``."""
        w, b = linear.weight.detach().t(), linear.bias
        if self.split > 1:
            w = w.reshape(w.shape[0], self.split, -1).transpose(0, 1)
            b = None if b is None else b.reshape(self.split, 1, -1)
        return w.contiguous(), _d(b)

    def _copy_weights(self, model: Transformer) -> None:
        self.layers = []
        for blk in model.blocks:
            n1, n2 = blk.norm1, blk.norm2
            self.layers.append(
                (*self._w(blk.attn.qkv), *self._w(blk.attn.proj), *self._w(blk.ff.up),
                 *self._w(blk.ff.down), _d(n1.weight), _d(getattr(n1, "bias", None)),
                 _d(n2.weight), _d(getattr(n2, "bias", None)))
            )  # fmt: skip
        self.eps = model.blocks[0].norm1.eps or self.eps
        self.head = self._w(model.head)
        self.final = _d(getattr(model.final_norm, "weight", None))
        self.embed = model.embed.weight.detach()
        self.pos = self.rope = None
        if self.seed:
            self.pos = model.pos_table
        else:  # rotate pairs (first half, second half): x * [cos, cos] + [x2, x1] * [-sin, sin]
            cos, sin = model.rope_cos, model.rope_sin  # (context, D/2)
            self.rope = (torch.cat([cos, cos], -1), torch.cat([-sin, sin], -1))  # (context, D)


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


def decode(model: Transformer, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits ``(B, V)`` of the next token after ``tokens`` ``(B,)``; the cache takes them."""
    plan = cache.plan
    if plan is None or plan.batch != cache.batch:
        plan = cache.plan = DecodePlan(model, cache.batch, plan)
    C, D, eps = plan.C, plan.D, plan.eps
    if cache.permuted:  # rows run in the cache's storage order
        tokens = tokens[cache.order_t]
    t, own = cache.length, cache.own_len
    if own >= cache.max_len:
        raise RuntimeError(f"KV cache overflow: {own + 1} > {cache.max_len} tokens")
    # Every layer's live keys and values, as views taken once per step: (B, H, m, D) each.
    live = cache.kv[:, :, :, :, cache.own_start : own + 1]
    keys, values, slots = live[:, 0].unbind(0), live[:, 1].unbind(0), cache.token_views
    shared = None
    if cache.shared is not None and cache.shared_len:
        sh = cache.shared[:, :, :, :, : cache.shared_len]  # (L, 2, 1, H, P, D)
        shared = list(zip(sh[:, 0].unbind(0), sh[:, 1].unbind(0), strict=True))
    if plan.seed:
        x = torch.add(plan.pos[t], plan.embed.index_select(0, tokens), alpha=math.sqrt(C))
    else:
        x = plan.embed.index_select(0, tokens)  # (B, C)
        cos, sin = plan.rope[0][t], plan.rope[1][t]  # (D,)
    for i, (wqkv, bqkv, wp, bp, wu, bu, wd, bd, g1, b1, g2, b2) in enumerate(plan.layers):
        sh = None if shared is None else shared[i]
        if plan.seed:  # post-norm
            _linear(x, wqkv, bqkv, out=plan.qkv)
            slots[i][own] = plan.kv_new
            y = _attend(plan.q, keys[i], values[i], sh)  # (B, C)
            x = torch.layer_norm(_linear(y, wp, bp).add_(x), (C,), g1, b1, eps)
            u = _linear(x, wu, bu).relu_()  # (B, d_ff)
            x = torch.layer_norm(_linear(u, wd, bd).add_(x), (C,), g2, b2, eps)
        else:  # pre-norm, rotary positions, SwiGLU
            _linear(torch.rms_norm(x, (C,), g1, eps), wqkv, out=plan.qkv)
            qk = plan.qk  # (B, 2, H, D)
            qk = torch.addcmul(qk * cos, torch.cat([qk[..., D // 2 :], qk[..., : D // 2]], -1), sin)
            slots[i][own, 0] = qk[:, 1]
            slots[i][own, 1] = plan.v_new
            y = _attend(qk[:, 0].unsqueeze(2), keys[i], values[i], sh)
            x = _linear(y, wp, x)  # x + attention
            g = _linear(torch.rms_norm(x, (C,), g2, eps), wu)  # (B, 2 * d_ff): [gate | value]
            f = g.shape[1] // 2
            x = _linear(F.silu(g[:, :f]).mul_(g[:, f:]), wd, x)
    cache.advance(1)
    if not plan.seed:
        x = torch.rms_norm(x, (C,), plan.final, eps)
    logits = _linear(x, *plan.head)  # (B, V)
    return logits[cache.slot_t] if cache.permuted else logits


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    shared: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
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
