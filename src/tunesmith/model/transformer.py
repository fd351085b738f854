"""The decoder-only Transformer, in two styles (see :class:`ModelConfig`).

``Transformer.forward`` is the one reference computation: training, evaluation and
the prompt's prefill run it, with or without a KV cache. Decoding one token per
row uses :class:`tunesmith.model.decode.Decoder`, which is checked against it.

Shapes in comments: B batch, T new tokens, S tokens attended to, C d_model,
H heads, D head_dim, V vocab.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.model.cache import KVCache
from tunesmith.model.config import ModelConfig
from tunesmith.tokenization.midi_io import STEPS_PER_BAR


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The original's fixed sin/cos position table, (length, dim)."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, (2 * (i // 2)) / dim)
    table = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


def rope_tables(
    length: int, head_dim: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of rotary embeddings, each (length, head_dim // 2)."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angle = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(angle).float(), torch.sin(angle).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, H, T, D); cos/sin: (T, D/2). Rotate pairs (first half, second half).
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        bias = cfg.style == "original"
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=bias)
        self.rotary = cfg.style == "modern"

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        )  # 3 x (B, H, T, D)
        if self.rotary and rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = self._cached(q, k, v, cache, layer)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)

    def _cached(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache, layer: int
    ) -> torch.Tensor:
        past = cache.own_len - cache.own_start  # own tokens before the new ones
        own_k, own_v = cache.write(layer, k, v)  # (B, H, past+T, D)
        prefix = cache.prefix(layer)
        T = q.shape[2]
        if prefix is None:
            if past == 0:
                return F.scaled_dot_product_attention(q, own_k, own_v, is_causal=T > 1)
            mask = None
            if T > 1:  # new tokens see all past tokens and the new ones causally
                mask = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(
                    diagonal=past
                )
            return F.scaled_dot_product_attention(q, own_k, own_v, attn_mask=mask)
        # Shared segment (batch 1) + own tokens (batch B): one softmax over both. All
        # rows' queries meet the shared keys in one matmul that reads them once.
        pk, pv = prefix  # (1, H, P, D)
        B, H, _, D = q.shape
        P = pk.shape[2]
        qp = q.transpose(0, 1).reshape(1, H, B * T, D)
        sp = (qp @ pk.transpose(-1, -2)).view(H, B, T, P).transpose(0, 1)  # (B, H, T, P)
        so = q @ own_k.transpose(-1, -2)  # (B, H, T, past+T)
        causal = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(diagonal=past)
        scores = torch.cat([sp, so.masked_fill(~causal, float("-inf"))], dim=-1)
        probs = torch.softmax(scores / math.sqrt(D), dim=-1)
        pp = probs[..., :P].transpose(0, 1).reshape(1, H, B * T, P)
        yp = (pp @ pv).view(H, B, T, D).transpose(0, 1)  # (B, H, T, D)
        return yp + probs[..., P:] @ own_v


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.style == "modern"
        bias = cfg.style == "original"
        self.up = nn.Linear(cfg.d_model, (2 if self.swiglu else 1) * cfg.d_ff, bias=bias)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)  # (B, T, d_ff or 2*d_ff)
        if not self.swiglu:
            return self.down(F.relu(h))
        # Sliced at a fixed size (not chunk): an exported graph then has no shape arithmetic.
        d_ff = self.down.in_features
        return self.down(F.silu(h[..., :d_ff]) * h[..., d_ff:])


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.pre_norm = cfg.style == "modern"
        norm = (
            (lambda: nn.RMSNorm(cfg.d_model, eps=1e-6))
            if self.pre_norm
            else (lambda: nn.LayerNorm(cfg.d_model, eps=1e-6))
        )
        self.norm1, self.norm2 = norm(), norm()
        self.attn = Attention(cfg)
        self.ff = FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.drop(self.attn(self.norm1(x), rope, cache, layer))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, rope, cache, layer)))
        return self.norm2(x + self.drop(self.ff(x)))


class Transformer(nn.Module):
    """``forward(ids, targets=None, cache=None, bar_pos=None) -> (logits, loss)``.

    With ``cfg.bar_positions`` it owns ``bar_embed``, one row per position in the bar,
    initialised to zeros: a model grown from one without it computes what that one did.
    """

    def __init__(self, cfg: ModelConfig, pad_id: int = 0) -> None:
        super().__init__()
        self.cfg, self.pad_id = cfg, pad_id
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.style == "original")
        if cfg.style == "modern":
            self.final_norm: nn.Module = nn.RMSNorm(cfg.d_model, eps=1e-6)
            self.head.weight = self.embed.weight  # tied
            cos, sin = rope_tables(cfg.context, cfg.head_dim)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.final_norm = nn.Identity()  # post-norm blocks end normalised
            self.register_buffer(
                "pos_table", sinusoidal_table(cfg.context, cfg.d_model), persistent=False
            )
        self.apply(self._init)
        if cfg.bar_positions:  # after _init: zeros, so adding it changes nothing at first
            self.bar_embed = nn.Embedding(STEPS_PER_BAR, cfg.d_model)
            nn.init.zeros_(self.bar_embed.weight)

    def _init(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int = 1, max_len: int | None = None) -> KVCache:
        """An empty cache for ``batch`` rows of up to ``max_len`` (default: context) tokens."""
        cfg = self.cfg
        p = next(self.parameters())
        return KVCache(
            cfg.n_layer, cfg.n_head, cfg.head_dim, batch, max_len or cfg.context, p.dtype, p.device
        )

    def _embed(
        self, ids: torch.Tensor, start: int, bar_pos: torch.Tensor | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Embeddings ``(B, T, C)`` of tokens at positions ``start ..``, and rotary tables."""
        T = ids.shape[1]
        x = self.embed(ids)  # (B, T, C)
        rope = None
        if self.cfg.style == "modern":
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        else:
            x = x * math.sqrt(self.cfg.d_model) + self.pos_table[start : start + T]
        if bar_pos is not None:
            x = x + self.bar_embed(bar_pos)
        return self.drop(x), rope

    def check_bar_pos(self, bar_pos: torch.Tensor | None, shape: tuple[int, ...]) -> None:
        """Refuse positions in the bar that the model does not take, or lacks, or misshapen."""
        if self.cfg.bar_positions and bar_pos is None:
            raise ValueError("this model embeds positions in the bar: pass bar_pos")
        if not self.cfg.bar_positions and bar_pos is not None:
            raise ValueError("this model has no bar-position embedding: bar_pos must be None")
        if bar_pos is not None and tuple(bar_pos.shape) != tuple(shape):
            raise ValueError(f"bar_pos has shape {tuple(bar_pos.shape)}, ids {tuple(shape)}")

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        bar_pos: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, V)`` (``(B, 1, V)`` with ``last_only``) of ``ids`` ``(B, T)``.

        With a cache, ``ids`` continue the tokens it holds and their keys and values
        are added to it. With ``targets``, also the cross-entropy (padding ignored).
        ``bar_pos`` ``(B, T)``: each id's position in the bar, required by (and only
        by) a model with ``cfg.bar_positions``.
        """
        T = ids.shape[1]
        self.check_bar_pos(bar_pos, tuple(ids.shape))
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.context:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds the context of {self.cfg.context}"
            )
        if cache is not None:  # rows run in the cache's storage order (see KVCache.reorder)
            ids = cache.to_storage_order(ids)
            bar_pos = None if bar_pos is None else cache.to_storage_order(bar_pos)
        x, rope = self._embed(ids, start, bar_pos)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, cache, i)
        if cache is not None:
            cache.advance(T)
        x = self.final_norm(x)
        if last_only:
            x = x[:, -1:]
        logits = self.head(x)  # (B, T or 1, V)
        if cache is not None:
            logits = cache.to_row_order(logits)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=self.pad_id
            )
        return logits, loss
