"""The one-token decoding step as a graph, built from the reference model's own modules.

:class:`StepGraph` runs the reference :class:`~tunesmith.model.transformer.Transformer`'s
embedding, norms, projections, feed-forward and head (the same module objects, so the
same weights) over one new token per row; only attention is written for the cache as
graph inputs, two kinds of them per layer:

- a *whole* batch-1 buffer ``(1, H, P, D)`` read in place and masked to its first
  ``shared_len`` positions: the cache's shared segment, or at batch 1 without one the
  row's own storage (most of a step's keys and values are read this way, without a
  copy: a graph cannot take a strided view);
- the rows' *own* buffers ``(B, H, N, D)`` of which only positions ``[lo, hi)`` are
  gathered (a beam's own part is a few tokens), then the new token's keys and values.

Positions past ``shared_len`` must hold finite numbers (a masked probability of 0 times
NaN is NaN): the caller zeroes them once per buffer. The new keys and values are an
output, which the caller writes into the cache. :func:`export_step` writes the ONNX graph.
A model with ``cfg.bar_positions`` takes one more input, last: ``bar_pos`` ``(B,)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.model.transformer import Transformer, apply_rope

# Inputs besides the per-layer buffers, in the graph's order.
SCALARS = ("tokens", "pos", "lo", "hi", "shared_len")


BAR_POS = "bar_pos"  # the tokens' positions in the bar, for a model with bar_positions


def input_names(n_layer: int, bar_positions: bool = False) -> list[str]:
    """Every graph input: tokens, positions, own k/v and shared k/v of each layer, [bar_pos]."""
    own = [f"{kv}{i}" for i in range(n_layer) for kv in ("k", "v")]
    shared = [f"s{kv}{i}" for i in range(n_layer) for kv in ("k", "v")]
    return [*SCALARS, *own, *shared, *([BAR_POS] if bar_positions else [])]


OUTPUTS = ("logits", "new_kv")


class StepGraph(nn.Module):
    """``forward(tokens, pos, lo, hi, shared_len, *buffers) -> (logits, new_kv)``.

    tokens ``(B,)`` in the cache's storage order; pos, lo, hi, shared_len 0-d int64
    (the new token's position, the own range gathered, the whole buffer's live length);
    buffers: own k, v ``(B, H, N, D)`` per layer, then whole k, v ``(1, H, P, D)`` per
    layer, then ``bar_pos`` ``(B,)`` (storage order) for a model with ``bar_positions``.
    Returns logits ``(B, V)`` and the new token's keys then values ``(L, B, 2H, 1, D)``.
    """

    def __init__(self, model: Transformer) -> None:
        super().__init__()
        self.model = model
        self.H, self.D = model.cfg.n_head, model.cfg.head_dim

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, lo: torch.Tensor,
                hi: torch.Tensor, shared_len: torch.Tensor, *buffers: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        m, L = self.model, self.model.cfg.n_layer
        x = m.embed(tokens)  # (B, C)
        rope = None
        if m.cfg.style == "modern":
            rope = (m.rope_cos[pos][None], m.rope_sin[pos][None])  # (1, D/2)
        else:
            x = x * math.sqrt(m.cfg.d_model) + m.pos_table[pos]
        if m.cfg.bar_positions:
            x = x + m.bar_embed(buffers[4 * L])
        own_range = torch.arange(lo, hi)
        mask = torch.arange(buffers[2 * L].shape[2]) < shared_len
        new_kv = []
        for i, blk in enumerate(m.blocks):
            own, whole = buffers[2 * i : 2 * i + 2], buffers[2 * (L + i) : 2 * (L + i) + 2]
            attend = _Attend(own, whole, own_range, mask)
            if blk.pre_norm:
                y, kv = self._attention(blk, blk.norm1(x), rope, attend)
                x = x + y
                x = x + blk.ff(blk.norm2(x))
            else:
                y, kv = self._attention(blk, x, rope, attend)
                x = blk.norm1(x + y)
                x = blk.norm2(x + blk.ff(x))
            new_kv.append(kv)
        return m.head(m.final_norm(x)), torch.stack(new_kv)

    def _attention(self, blk: nn.Module, x: torch.Tensor,
                   rope: tuple[torch.Tensor, torch.Tensor] | None, attend: _Attend,
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The block's attention output ``(B, C)`` and the new keys/values ``(B, 2H, 1, D)``."""
        H = self.H
        # Shapes with -1 for the batch: no shape arithmetic in the graph.
        qkv = blk.attn.qkv(x).reshape(-1, 3 * H, 1, self.D)  # heads of [q | k | v]
        qk, v = qkv[:, : 2 * H], qkv[:, 2 * H :]
        if blk.attn.rotary and rope is not None:
            qk = apply_rope(qk, *rope)  # q and k rotated in one go
        q, k = qk[:, :H], qk[:, H:]
        y = attend(q, k, v).reshape(-1, H * self.D)
        return blk.attn.proj(y), torch.cat([k, v], 1)


class _Attend:
    """One query per row over the whole buffer (masked), the gathered own range and the
    new token: one softmax over all of them, as ``Transformer.forward`` computes it."""

    def __init__(self, own: tuple[torch.Tensor, ...], whole: tuple[torch.Tensor, ...],
                 own_range: torch.Tensor, mask: torch.Tensor) -> None:  # fmt: skip
        self.own, self.whole, self.own_range, self.mask = own, whole, own_range, mask

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(B, H, 1, D)`` attention of q ``(B, H, 1, D)``; k, v the new token's."""
        (ok, ov), (wk, wv) = self.own, self.whole
        ok = torch.cat([ok.index_select(2, self.own_range), k], 2)  # (B, H, m + 1, D)
        ov = torch.cat([ov.index_select(2, self.own_range), v], 2)
        qs = q.transpose(0, 2)  # (1, H, B, D): every row's query meets the whole buffer at once
        s_whole = torch.matmul(qs, wk.transpose(2, 3)).transpose(0, 2)  # (B, H, 1, P)
        s_whole = torch.where(self.mask, s_whole, torch.tensor(float("-inf")))
        s_own = torch.matmul(q, ok.transpose(2, 3))  # (B, H, 1, m + 1)
        P = wk.shape[2]
        probs = F.softmax(torch.cat([s_whole, s_own], -1) * q.shape[-1] ** -0.5, dim=-1)
        y_whole = torch.matmul(probs[..., :P].transpose(0, 2), wv).transpose(0, 2)
        return y_whole + torch.matmul(probs[..., P:], ov)


def example_inputs(model: Transformer, batch: int = 2, length: int = 8) -> tuple:
    """Inputs of the right kinds for tracing (zeros; shapes become dynamic axes)."""
    cfg = model.cfg
    H, D, L = cfg.n_head, cfg.head_dim, cfg.n_layer
    scalars = [torch.zeros(batch, dtype=torch.long)]
    scalars += [torch.tensor(v, dtype=torch.long) for v in (3, 1, 3, 2)]
    own = [torch.zeros(batch, H, length, D) for _ in range(2 * L)]
    shared = [torch.zeros(1, H, length + 1, D) for _ in range(2 * L)]
    bar = [torch.zeros(batch, dtype=torch.long)] if cfg.bar_positions else []
    return (*scalars, *own, *shared, *bar)


OPSET = 17


def _rms_norm_symbolic(g, x, normalized_shape, weight, eps):  # noqa: ANN001, ANN202
    """``aten::rms_norm`` over the last axis in opset-17 operators (the exporter lacks it):
    ``x / sqrt(mean(x^2) + eps) * weight``, which ONNX Runtime fuses into one kernel."""
    from torch.onnx import symbolic_helper as sh

    eps_value = sh._maybe_get_const(eps, "f")
    eps_value = 1e-6 if eps_value is None or sh._is_none(eps_value) else float(eps_value)
    square = g.op("Pow", x, g.op("Constant", value_t=torch.tensor(2.0)))
    axes = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.long))
    mean = g.op("ReduceMean", square, axes, keepdims_i=1) if OPSET >= 18 else g.op(
        "ReduceMean", square, axes_i=[-1], keepdims_i=1)  # fmt: skip
    eps_t = g.op("Constant", value_t=torch.tensor(eps_value, dtype=torch.float))
    y = g.op("Div", x, g.op("Sqrt", g.op("Add", mean, eps_t)))
    return y if sh._is_none(weight) else g.op("Mul", y, weight)


def export_graph(
    model: Transformer,
    graph: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: str | Path | BinaryIO,
    **options: Any,
) -> None:
    """Export ``graph`` (a wrapper over fp32 ``model``) to ``path`` (a file name or a binary
    file object); ``options`` go to ``torch.onnx.export`` (names, dynamic axes, opsets)."""
    if next(model.parameters()).dtype != torch.float32:
        raise ValueError("the ONNX step is exported from a float32 model")
    # The exporter restores the wrapper's training flag afterwards, and with it the
    # model's: a wrapper left in training mode would switch the model's dropout on.
    was_training = model.training
    graph.eval()
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, OPSET)
    try:
        with torch.no_grad():
            target = path if hasattr(path, "write") else str(path)
            torch.onnx.export(graph, inputs, target, opset_version=OPSET, dynamo=False, **options)
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::rms_norm", OPSET)
        model.train(was_training)


def export_step(model: Transformer, path: str | Path | BinaryIO) -> None:
    """Write the step of ``model`` (fp32, its weights inside) as an ONNX graph to ``path``
    (a file name or a binary file object)."""
    names = input_names(model.cfg.n_layer, model.cfg.bar_positions)
    dynamic = {"tokens": {0: "B"}, "logits": {0: "B"}, "new_kv": {1: "B"}}
    for name in names[len(SCALARS) :]:
        dynamic[name] = {2: "P"} if name.startswith("s") else {0: "B", 2: "N"}
    if model.cfg.bar_positions:
        dynamic[BAR_POS] = {0: "B"}
    export_graph(
        model, StepGraph(model), example_inputs(model), path, input_names=names,
        output_names=list(OUTPUTS), dynamic_axes=dynamic,
    )  # fmt: skip
