"""Generation speed: KV-cached decoding vs the original's method, beam vs greedy, cold start.

    python -m benchmarks.generation [--threads 2] [--prompt-tokens 512] [--new-tokens 512]

The original re-ran the whole window through the model for every new token (no
cache). Both methods run here on the same `seed`-preset model (random weights:
speed does not depend on them), batch 1, the same prompt. A step of the
original's method costs more as its window grows, so it is timed at
--original-samples window lengths evenly spaced over the whole extension (the
tokens greedy produced) and averaged; --original-full times every step instead
(30-60 s). Decoding is memory-bound: on a machine shared with other jobs the
figures move by +-20%, so measure with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.search import beam_search, sample
from tunesmith.model import Transformer, bundled_model_path, preset, save_checkpoint
from tunesmith.tokenization import SeedTokenizer
from tunesmith.tokenization.midi_io import load_midi

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "final-fantasy-piano"


def prompt_ids(tok: SeedTokenizer, n: int) -> list[int]:
    """The first n tokens of a real piece (a synthetic scale when the corpus is absent)."""
    for path in sorted(DATA.glob("*.mid")):
        ids = tok.encode(load_midi(path))
        if len(ids) >= n:
            return ids[:n]
    body = [t for p in range(n) for t in (4 + 48 + p % 24, 132 + 2)]
    return ([1, 0] + body)[:n]


def stop_after(n_tokens: int):
    calls = {"n": 0}

    def callback(_done: int, _total: int) -> bool:
        calls["n"] += 1
        return calls["n"] >= n_tokens

    return callback


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def original_step(model: Transformer, seq: torch.Tensor) -> torch.Tensor:
    """One token as the original made it: the full window through the model, no cache."""
    logits, _ = model(seq[:, -model.cfg.context :])
    return torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)


def original_seconds_per_token(
    model: Transformer, ids: list[int], extension: list[int], samples: int | None
) -> float:
    """Mean time of the original's step over the extension (every step, or ``samples`` of them)."""
    n = len(extension)
    steps = (
        range(n)
        if samples is None
        else sorted({round(i * (n - 1) / max(1, samples - 1)) for i in range(samples)})
    )
    total = 0.0
    for i in steps:
        seq = torch.tensor([ids + extension[:i]])
        total += timed(lambda seq=seq: original_step(model, seq))
    return total / len(steps)


def cold_start(notes: int) -> float:
    """Wall time of `tunesmith generate --notes N` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tunesmith", "generate", "--notes", str(notes)]
        cmd += ["--out", f"{tmp}/x.mid"]
        # Before the bundled model exists: a random seed-preset one.
        if not bundled_model_path().exists():
            tok = SeedTokenizer()
            save_checkpoint(f"{tmp}/ck", Transformer(preset("seed", tok.vocab_size)), tok)
            cmd += ["--model", f"{tmp}/ck"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--original-samples", type=int, default=16)
    ap.add_argument("--original-full", action="store_true", help="time all its steps")
    ap.add_argument("--beam-width", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = SeedTokenizer()
    model = Transformer(preset("seed", tok.vocab_size)).eval()
    ids = prompt_ids(tok, args.prompt_tokens)
    n = args.new_tokens
    greedy = GenerationConfig(search="greedy", notes=100_000, stop_at_eos=False)
    beam = GenerationConfig(
        search="beam", beam_width=args.beam_width, notes=100_000, stop_at_eos=False
    )
    with torch.inference_mode():
        sample(model, tok, ids[:64], greedy, stop_after(16))  # warm-up
        out: list = []
        t_greedy = timed(lambda: out.append(sample(model, tok, ids, greedy, stop_after(n))))
        t_beam = timed(lambda: beam_search(model, tok, ids, beam, stop_after(n)))
        samples = None if args.original_full else args.original_samples
        t_orig = original_seconds_per_token(model, ids, out[0].ids, samples)
    rate_greedy, rate_orig = n / t_greedy, 1 / t_orig
    how = "every step" if samples is None else f"{samples} evenly spaced steps"
    print(f"seed preset, batch 1, {args.threads} threads, prompt {len(ids)} tokens, +{n} tokens")
    print(f"{'method':34s} {'tokens/s':>10s} {'ms/token':>10s}")
    print(
        f"{'original (full window, no cache)':34s} {rate_orig:10.1f} {1e3 / rate_orig:10.2f}  ({how})"
    )
    print(f"{'tunesmith greedy (KV cache)':34s} {rate_greedy:10.1f} {1e3 / rate_greedy:10.2f}")
    print(f"ratio cached / original: {rate_greedy / rate_orig:.1f}x (target >= 30x)")
    print(
        f"beam {args.beam_width}: {t_beam:.2f} s vs greedy {t_greedy:.2f} s: {t_beam / t_greedy:.2f}x greedy's time (target <= 3x)"
    )
    print(f"cold start of `tunesmith generate --notes 64`: {cold_start(64):.2f} s")


if __name__ == "__main__":
    main()
