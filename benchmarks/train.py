"""Training throughput: tokens/s of full training steps and the fraction of this CPU's fp32 peak.

The peak is measured in the same run (large ``torch.mm``) right before every
step, so the ratio holds for whatever machine and load the benchmark runs on. Model FLOPs per token are
``6 * N + 6 * n_layer * d_model * seq_len``: N the weights that take part in
matmuls (all but the embedding lookup), and the attention scores and mix of a
causal model (half of PaLM's ``12 * n_layer * d_model * seq_len``, which counts
the full matrix; that figure is printed too).

    python -m benchmarks.train                       # seed preset, batch 12 x 1024 (the original's)
    python -m benchmarks.train --batch 4 --seq-len 256 --steps 2   # a quick look
    python -m benchmarks.train --precision fp32      # one precision only (default: both)
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tunesmith.model.config import preset
from tunesmith.model.transformer import Transformer
from tunesmith.training.config import TrainConfig
from tunesmith.training.distributed import DistInfo
from tunesmith.training.loop import train_step
from tunesmith.training.optim import build_optimizer


def matmul_peak(n: int = 2048, seconds: float = 2.0) -> float:
    """fp32 FLOP/s of back-to-back ``n x n @ n x n`` products over about ``seconds``.

    An average over seconds rather than the best single product: a training step
    lasts seconds too, so both see the same share of a shared machine.
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up: thread pool, caches
    count, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n**3 * count / elapsed


def flops_per_token(model: Transformer, seq_len: int, causal: bool = True) -> float:
    """Training FLOPs (forward + backward) per token."""
    cfg = model.cfg
    n = model.num_params() - model.embed.weight.numel()
    if cfg.style == "modern":  # tied: the output layer's matmul uses the embedding matrix
        n += model.embed.weight.numel()
    # QK^T and AV: 2 matmuls x 2 FLOPs x d_model x seq_len, x3 for the backward pass.
    attention = 12 * cfg.n_layer * cfg.d_model * seq_len
    return 6 * n + (attention / 2 if causal else attention)


def measure(
    name: str, batch: int, seq_len: int, steps: int, precision: str
) -> tuple[list[tuple[float, float]], Transformer]:
    """``(step seconds, matmul peak FLOP/s just before it)`` for ``steps`` training steps.

    On a shared machine the load changes from second to second; measuring the peak
    right before each step compares the two under the same conditions.
    """
    torch.manual_seed(0)
    model = Transformer(
        preset(name, 296, context=max(seq_len, preset(name, 296).context)), pad_id=0
    ).train()
    cfg = TrainConfig(
        preset=name, seq_len=seq_len, batch_size=batch, max_steps=steps + 1, precision=precision
    )
    cfg = cfg.resolved(steps + 1)
    opt, sched = build_optimizer(model, cfg, model.cfg.d_model)
    x = torch.randint(4, 296, (batch, seq_len))
    y = torch.randint(4, 296, (batch, seq_len))
    out = []
    for i in range(steps + 1):
        peak = matmul_peak()
        t = time.perf_counter()
        train_step(model, x, y, 0, DistInfo(), precision)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if i:  # the first step pays for allocations and thread start-up
            out.append((time.perf_counter() - t, peak))
    return out, model


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="seed")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--precision",
        choices=("both", "fp32", "bf16"),
        default="both",
        help="both (default): fp32 and bf16 autocast side by side, and their ratio",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the trainer does
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    results = [report(args, p) for p in precisions]
    if len(results) == 2:
        fp32, bf16 = results
        ratio = bf16["tokens_per_s"] / fp32["tokens_per_s"]
        faster = "bf16" if ratio > 1 else "fp32"
        line = f"bf16 / fp32 training throughput: {ratio:.2f}x ({faster} is faster on this CPU)"
        print(json.dumps({"bf16_over_fp32": round(ratio, 3)}) if args.json else line)


def report(args: argparse.Namespace, precision: str) -> dict[str, object]:
    """Measure one precision, print its figures and return them."""
    runs, model = measure(args.preset, args.batch, args.seq_len, args.steps, precision)
    tokens = args.batch * args.seq_len
    per_token = flops_per_token(model, args.seq_len)
    # The median step and the median ratio to the peak measured just before each step.
    times = sorted(r[0] for r in runs)
    ratios = sorted(per_token * tokens / t / peak for t, peak in runs)
    step, ratio = times[len(times) // 2], ratios[len(ratios) // 2]
    peak = per_token * tokens / step / ratio
    achieved = per_token * tokens / step
    palm = flops_per_token(model, args.seq_len, causal=False) * tokens / step
    result = {
        "preset": args.preset,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "params": model.num_params(),
        "step_s": round(step, 3),
        "step_s_min": round(times[0], 3),
        "tokens_per_s": round(tokens / step),
        "model_gflops": round(achieved / 1e9, 1),
        "peak_gflops": round(peak / 1e9, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "fraction_of_peak_palm": round(palm / peak, 3),
    }
    if args.json:
        print(json.dumps(result))
        return result
    print(
        f"{args.preset} preset, batch {args.batch} x {args.seq_len}, {precision}, "
        f"{result['threads']} threads, {result['params']:,} weights\n"
        f"  training step     {result['step_s']:.3f} s (median; fastest {result['step_s_min']:.3f} s)\n"
        f"  throughput        {result['tokens_per_s']:,} tokens/s\n"
        f"  model FLOP/s      {result['model_gflops']} GFLOP/s\n"
        f"  fp32 matmul peak  {result['peak_gflops']} GFLOP/s\n"
        f"  fraction of peak  {100 * result['fraction_of_peak']:.1f}% "
        f"({100 * result['fraction_of_peak_palm']:.1f}% counting full attention as PaLM does)"
    )
    return result


if __name__ == "__main__":
    main()
