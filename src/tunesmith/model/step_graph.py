"""The one-token decoding step as a graph, built from the reference model's own modules.

:class:`StepGraph` runs the reference :class:`~tunesmith.model.transformer.Transformer`'s
embedding, norms, projections, feed-forward and head (the same module objects, so the
same weights) over one new token per row; only attention is written for the cache as
graph inputs: it reads every layer's whole key/value buffer ``(B, H, N, D)`` (the
:class:`~tunesmith.model.cache.KVCache` storage, bound without a copy) and masks it to
the live positions ``[lo, hi)``, plus the shared segment's first ``shared_len``
positions and the new token itself. The new keys and values are an output, which the
caller writes into the cache. :func:`export_step` turns it into an ONNX graph.

Reading the whole buffer costs at most the slide's share of the context more than
reading the live part, and saves a copy of the live part per step (a graph cannot
take a strided view). Unused positions must hold finite numbers (a masked probability
of 0 times NaN is NaN): the caller zeroes them once per buffer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import BinaryIO

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.model.transformer import Transformer, apply_rope

# Inputs besides the per-layer buffers, in the graph's order.
SCALARS = ("tokens", "pos", "lo", "hi", "shared_len")


def input_names(n_layer: int) -> list[str]:
    """Every graph input: tokens, positions, then own k/v and shared k/v of each layer."""
    own = [f"{kv}{i}" for i in range(n_layer) for kv in ("k", "v")]
    shared = [f"s{kv}{i}" for i in range(n_layer) for kv in ("k", "v")]
    return [*SCALARS, *own, *shared]


OUTPUTS = ("logits", "new_kv")


class StepGraph(nn.Module):
    """``forward(tokens, pos, lo, hi, shared_len, *buffers) -> (logits, new_kv)``.

    tokens ``(B,)`` in the cache's storage order; pos, lo, hi, shared_len 0-d int64
    (the new token's position, the live own range, the shared length); buffers: own k, v
    ``(B, H, N, D)`` per layer, then shared k, v ``(1, H, P, D)`` per layer. Returns
    logits ``(B, V)`` and the new token's keys then values ``(L, B, 2H, 1, D)``.
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
        own_mask = _range_mask(buffers[0].shape[2], lo, hi)
        shared_mask = _range_mask(buffers[2 * L].shape[2], torch.zeros_like(lo), shared_len)
        new_kv = []
        for i, blk in enumerate(m.blocks):
            own, shared = buffers[2 * i : 2 * i + 2], buffers[2 * (L + i) : 2 * (L + i) + 2]
            attend = _Attend(own, shared, own_mask, shared_mask)
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


def _range_mask(n: int | torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``(n,)`` True on positions ``lo <= i < hi``."""
    i = torch.arange(n)
    return (i >= lo) & (i < hi)


class _Attend:
    """One query per row over the masked shared and own buffers and the new token."""

    def __init__(self, own: tuple[torch.Tensor, ...], shared: tuple[torch.Tensor, ...],
                 own_mask: torch.Tensor, shared_mask: torch.Tensor) -> None:  # fmt: skip
        self.own, self.shared = own, shared
        self.own_mask, self.shared_mask = own_mask, shared_mask

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(B, H, 1, D)`` attention of q over every live key, the new k/v included."""
        (ok, ov), (sk, sv) = self.own, self.shared
        scale = q.shape[-1] ** -0.5
        ninf = torch.tensor(float("-inf"))
        s_own = torch.where(self.own_mask, torch.matmul(q, ok.transpose(2, 3)), ninf)
        s_sh = torch.where(self.shared_mask, torch.matmul(q, sk.transpose(2, 3)), ninf)
        s_new = torch.matmul(q, k.transpose(2, 3))  # (B, H, 1, 1)
        P, N = sk.shape[2], ok.shape[2]
        probs = F.softmax(torch.cat([s_sh, s_own, s_new], -1) * scale, dim=-1)
        y = torch.matmul(probs[..., :P], sv) + torch.matmul(probs[..., P : P + N], ov)
        return y + probs[..., P + N :] * v


def example_inputs(model: Transformer, batch: int = 2, length: int = 8) -> tuple:
    """Inputs of the right kinds for tracing (zeros; shapes become dynamic axes)."""
    cfg = model.cfg
    H, D, L = cfg.n_head, cfg.head_dim, cfg.n_layer
    scalars = [torch.zeros(batch, dtype=torch.long)]
    scalars += [torch.tensor(v, dtype=torch.long) for v in (3, 0, 3, 2)]
    own = [torch.zeros(batch, H, length, D) for _ in range(2 * L)]
    shared = [torch.zeros(1, H, length + 1, D) for _ in range(2 * L)]
    return (*scalars, *own, *shared)


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


def export_step(model: Transformer, path: str | Path | BinaryIO) -> None:
    """Write the step of ``model`` (fp32, its weights inside) as an ONNX graph to ``path``
    (a file name or a binary file object)."""
    if next(model.parameters()).dtype != torch.float32:
        raise ValueError("the ONNX step is exported from a float32 model")
    names = input_names(model.cfg.n_layer)
    dynamic = {"tokens": {0: "B"}, "logits": {0: "B"}, "new_kv": {1: "B"}}
    for name in names[len(SCALARS) :]:
        dynamic[name] = {2: "P"} if name.startswith("s") else {0: "B", 2: "N"}
    # The exporter restores the wrapper's training flag afterwards, and with it the
    # model's: a wrapper left in training mode would switch the model's dropout on.
    was_training = model.training
    graph = StepGraph(model).eval()
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, OPSET)
    try:
        with torch.no_grad():
            torch.onnx.export(
                graph, example_inputs(model), path if hasattr(path, "write") else str(path),
                input_names=names,
                output_names=list(OUTPUTS), dynamic_axes=dynamic, opset_version=OPSET,
                dynamo=False,
            )  # fmt: skip
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::rms_norm", OPSET)
        model.train(was_training)
