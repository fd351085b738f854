"""The batch-1 decoding step with ONNX Runtime's fused attention, from the reference modules.

:class:`~tunesmith.model.step_graph.StepGraph` writes attention out of small operators
over the cache's whole capacity (masked), which a step of a batch-1 decoding pays for
at every token. Here attention is ONNX Runtime's ``GroupQueryAttention`` contrib
operator (as many key/value heads as query heads): it rotates the query and key
(the model's own rotary tables), appends the new key and value to the cache's buffers
*in place* (the buffers are bound as both its past input and its present output),
and attends over the live positions only. Everything else (embedding, norms,
projections, feed-forward, head) is the reference model's modules, as in StepGraph.

Inputs: ``tokens`` ``(S,)`` (one token a step, or a whole prompt into an empty cache:
a prefill), ``past`` (0-d int64, the tokens already in the buffers, also the first new
token's position), ``bar_pos`` ``(S,)`` (a model with ``bar_positions`` only: each token's
position in the bar), and per layer the cache's storage ``sk{i}``, ``sv{i}`` ``(1, H, N, D)``.
Outputs: ``logits`` ``(1, V)`` of the last token, then ``present_k{i}``, ``present_v{i}``
(the same buffers, bound to the same memory). The buffers' positions past ``past + S`` are
never read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from tunesmith.model.backend_names import fused_supported
from tunesmith.model.step_graph import BAR_POS, export_graph
from tunesmith.model.transformer import Transformer


def supports_fused(model: Transformer) -> bool:
    """Whether the fused graph can run the model (:func:`~tunesmith.model.backend_names.fused_supported`)."""
    return fused_supported(model.cfg)


def fused_input_names(model: Transformer) -> list[str]:
    """The fused graph's inputs, in order (``bar_pos`` for a model with bar positions only)."""
    scalars = ["tokens", "past", *([BAR_POS] if model.cfg.bar_positions else [])]
    return [*scalars, *(f"s{kv}{i}" for i in range(model.cfg.n_layer) for kv in "kv")]


def fused_output_names(model: Transformer) -> list[str]:
    """``logits`` then each layer's present key and value (the buffers, written in place)."""
    return ["logits", *(f"present_{kv}{i}" for i in range(model.cfg.n_layer) for kv in "kv")]


class _GroupQueryAttention(torch.autograd.Function):
    """``com.microsoft::GroupQueryAttention`` over packed qkv ``(1, 1, 3C)``; traced only."""

    @staticmethod
    def forward(ctx: Any, qkv: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor,
                seqlens: torch.Tensor, total: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                heads: int, rotary: bool) -> tuple[torch.Tensor, ...]:  # fmt: skip
        # Shapes for the tracer; ONNX Runtime computes the values.
        out = qkv.new_zeros(qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3)
        return out, past_k.clone(), past_v.clone()

    @staticmethod
    def symbolic(g: Any, qkv: Any, past_k: Any, past_v: Any, seqlens: Any, total: Any,
                 cos: Any, sin: Any, heads: int, rotary: bool) -> Any:  # fmt: skip
        none = g.op("prim::Constant")
        none.setType(torch._C.OptionalType.ofTensor())
        inputs = [qkv, none, none, past_k, past_v, seqlens, total]
        if rotary:
            inputs += [cos, sin]
        return g.op(
            "com.microsoft::GroupQueryAttention", *inputs, num_heads_i=heads,
            kv_num_heads_i=heads, do_rotary_i=int(rotary), rotary_interleaved_i=0, outputs=3,
        )  # fmt: skip


class FusedStepGraph(nn.Module):
    """``forward(tokens, past, [bar_pos,] *buffers) -> (logits, *presents)``: see the module."""

    def __init__(self, model: Transformer) -> None:
        super().__init__()
        self.model = model
        self.rotary = model.cfg.style == "modern"
        if self.rotary:
            self.cos, self.sin = model.rope_cos, model.rope_sin
        else:  # unused (no rotation), but the operator's signature wants tensors
            self.cos = self.sin = torch.zeros(1)

    def forward(self, tokens: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        past, buffers = inputs[0], inputs[1:]
        ones = torch.ones_like(tokens)  # (S,): S traced as a size of the input, not a constant
        # (S, C), 2-D: ONNX Runtime fuses a 2-D MatMul and its bias Add into one Gemm.
        x = m.embed(tokens)
        if not self.rotary:
            positions = past + torch.cumsum(ones, 0) - 1
            x = x * math.sqrt(m.cfg.d_model) + m.pos_table[positions]
        if m.cfg.bar_positions:
            x = x + m.bar_embed(buffers[0])
            buffers = buffers[1:]
        total = (past + ones.sum()).to(torch.int32)
        seqlens = (total - 1).reshape(1)
        presents: list[torch.Tensor] = []
        for i, blk in enumerate(m.blocks):
            kv = (buffers[2 * i], buffers[2 * i + 1], seqlens, total)
            if blk.pre_norm:
                y = self._attention(blk, blk.norm1(x), kv, presents)
                x = x + y
                x = x + blk.ff(blk.norm2(x))
            else:
                x = blk.norm1(x + self._attention(blk, x, kv, presents))
                x = blk.norm2(x + blk.ff(x))
        return (m.head(m.final_norm(x[-1:])), *presents)

    def _attention(self, blk: nn.Module, x: torch.Tensor, kv: tuple[torch.Tensor, ...],
                   presents: list[torch.Tensor]) -> torch.Tensor:  # fmt: skip
        """The block's attention output ``(S, C)``; its present buffers go to ``presents``."""
        qkv = blk.attn.qkv(x)[None]  # (1, S, 3C)
        y, k, v = _GroupQueryAttention.apply(
            qkv, *kv, self.cos, self.sin, self.model.cfg.n_head, self.rotary
        )
        presents.extend([k, v])
        return blk.attn.proj(y[0])


def fused_example_inputs(model: Transformer, length: int = 8) -> tuple[torch.Tensor, ...]:
    """Inputs of the right kinds for tracing (two tokens, so that S stays a dimension)."""
    cfg = model.cfg
    scalars = [torch.zeros(2, dtype=torch.long), torch.tensor(3, dtype=torch.long)]
    scalars += [torch.zeros(2, dtype=torch.long)] if cfg.bar_positions else []
    bufs = [torch.zeros(1, cfg.n_head, length, cfg.head_dim) for _ in range(2 * cfg.n_layer)]
    return (*scalars, *bufs)


def export_fused_step(model: Transformer, path: str | Path | BinaryIO) -> None:
    """Write the fused batch-1 step of ``model`` (fp32, weights inside) as ONNX to ``path``."""
    names, outputs = fused_input_names(model), fused_output_names(model)
    dynamic: dict[str, dict[int, str]] = {n: {0: "S"} for n in ("tokens", BAR_POS) if n in names}
    dynamic.update({n: {2: "N"} for n in names if n.startswith("s")})
    dynamic.update({n: {2: "N"} for n in outputs[1:]})
    export_graph(
        model, FusedStepGraph(model), fused_example_inputs(model), path, input_names=names,
        output_names=outputs, dynamic_axes=dynamic, custom_opsets={"com.microsoft": 1},
    )  # fmt: skip
