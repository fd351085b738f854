"""Generation speed: KV-cached decoding vs the original's method, the ONNX Runtime step
(``--backend onnx``) vs the torch step, beam vs greedy, cold start, and the web app's
throughput under concurrent requests.

    python -m benchmarks.generation [--threads 2] [--prompt-tokens 512] [--new-tokens 512]
                                    [--long-tokens 2048] [--web-requests 16] [--web-notes 64]

The torch step and the onnx path (`generate`'s default: the fused graph over numpy
storage, numpy logits transforms) run alternately in one process, batch 1, greedy, on the
`seed` preset (random weights) and on the bundled model (prompt of half its context); the
rate is of decoding alone (the prompt's encoding cancels out); each line gives both
tokens/s, their ratio and beam --beam-width's time over greedy's on the torch step, which
`auto` keeps for beam. The seed preset's step is exported in memory (a few seconds); the
bundled model's comes from the on-disk cache (built on first use).

The onnx path on the bundled model at 1 thread and at --threads (2: what `generate` uses when
a second core is idle), their ratio.

After a 16-token prompt (bundled model), greedy decoding over a short window (+256 tokens;
a step reads fewer keys and values) and a long piece (--long-tokens new tokens, timed whole:
its window slides, and each slide re-encodes three quarters of the context, one forward on
torch, one prefill run of the fused graph on the numpy path) on both paths.

The original re-ran the whole window through the model for every new token (no
cache). Both methods run here on the same `seed`-preset model (random weights:
speed does not depend on them), batch 1, the same prompt. A step of the
original's method costs more as its window grows, so it is timed at
--original-samples window lengths evenly spaced over the whole extension (the
tokens greedy produced) and averaged; --original-full times every step instead
(30-60 s). Decoding is memory-bound: on a machine shared with other jobs the
figures move by +-20%, so measure with the machine otherwise idle.

Last, the web app (``tunesmith app``, bundled model) is served once per backend (torch,
then onnx) and --web-requests clients ask it at once for --web-notes new notes each
(top-k, distinct seeds): per backend, the median and 95th-percentile latency, the wall
time, requests/s and new notes/s, then onnx's throughput over torch's (see
benchmarks/webapp.py; --web-requests 0 skips it, as does a missing `app` extra).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.webapp import print_web_runs, web_throughput
from tunesmith.generation.config import GenerationConfig
from tunesmith.generation.search import beam_search, sample
from tunesmith.model import (
    Transformer,
    bundled_model_path,
    load_checkpoint,
    preset,
    save_checkpoint,
)
from tunesmith.model.backend_names import onnxruntime_available
from tunesmith.model.backends import StepBackend, open_backend
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import load_midi

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "final-fantasy-piano"


def prompt_ids(tok: PairTokenizer, n: int) -> list[int]:
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


def cold_start(notes: int, backend: str = "auto") -> float:
    """Wall time of `tunesmith generate --notes N --backend B` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tunesmith", "generate", "--notes", str(notes)]
        cmd += ["--backend", backend]
        cmd += ["--out", f"{tmp}/x.mid"]
        # Before the bundled model exists: a random seed-preset one.
        if not bundled_model_path().exists():
            tok = PairTokenizer()
            save_checkpoint(f"{tmp}/ck", Transformer(preset("seed", tok.vocab_size)), tok)
            cmd += ["--model", f"{tmp}/ck"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def decode_rate(run: Callable[[int], object], n: int) -> float:
    """Tokens/s of decoding alone: (n - 1) tokens over the time n new tokens take beyond one
    (the prompt's encoding, one forward on torch and a step a token on the numpy path, is in
    both runs and cancels out)."""
    return (n - 1) / (timed(lambda: run(n)) - timed(lambda: run(1)))


def greedy_runs(
    model: Transformer, tok: PairTokenizer, ids: list[int], steps: dict[str, StepBackend]
) -> dict[str, Callable[[int], object]]:
    """Per backend, greedy for n new tokens as `generate` runs it: torch on the torch step,
    onnx on the numpy path over the fused graph (where the model has one)."""
    greedy = GenerationConfig(search="greedy", notes=100_000, stop_at_eos=False)
    runs: dict[str, Callable[[int], object]] = {}
    if "torch" in steps:
        runs["torch"] = lambda n: sample(
            model, tok, ids, greedy, stop_after(n), steps["torch"].decoder(model)
        )
    onnx = steps.get("onnx")
    if onnx is not None and onnx.fused is not None:
        runs["onnx"] = lambda n: sample(None, tok, ids, greedy, stop_after(n),
                                        onnx.fused_decoder(model.cfg), sampler="numpy")  # fmt: skip
    elif onnx is not None:
        runs["onnx"] = lambda n: sample(model, tok, ids, greedy, stop_after(n), onnx.decoder(model))
    return runs


def open_steps(
    model: Transformer, threads: int, checksum: str | None = None, checkpoint: Path | None = None
) -> dict[str, StepBackend]:
    """The torch step, and the onnx one when ONNX Runtime is installed."""
    steps = {"torch": open_backend("torch", model, None, None, threads)}
    if onnxruntime_available():
        steps["onnx"] = open_backend("onnx", model, checksum, checkpoint, threads)
    return steps


def backend_rates(
    model: Transformer, tok: PairTokenizer, ids: list[int], args: argparse.Namespace,
    checksum: str | None = None, checkpoint: Path | None = None,
) -> dict[str, float]:  # fmt: skip
    """Greedy tokens/s of the torch and onnx paths (best of --repeats, alternated), and beam
    --beam-width's time over greedy's, both on the torch step (which `auto` uses for beam)."""
    steps = open_steps(model, args.threads, checksum, checkpoint)
    runs, n = greedy_runs(model, tok, ids, steps), args.new_tokens
    beam = GenerationConfig(search="beam", beam_width=args.beam_width, notes=100_000,
                            stop_at_eos=False)  # fmt: skip
    best = dict.fromkeys(runs, 0.0)
    with torch.inference_mode():
        for run in runs.values():  # warm-up
            run(16)
        for _ in range(args.repeats):
            for name, run in runs.items():
                best[name] = max(best[name], decode_rate(run, n))
        t_beam = timed(
            lambda: beam_search(model, tok, ids, beam, stop_after(n), steps["torch"].decoder(model))
        )
        t_greedy = timed(lambda: runs["torch"](n))
    return {**best, "beam_over_greedy": t_beam / t_greedy}


def print_backends(label: str, rates: dict[str, float], beam_width: int) -> None:
    """One line per backend, the ratio, and beam over greedy."""
    print(f"{label}: torch step {rates['torch']:.0f} tokens/s", end="")
    if "onnx" in rates:
        ratio = rates["onnx"] / rates["torch"]
        print(
            f", onnx step {rates['onnx']:.0f} tokens/s: **{ratio:.2f}x** (target >= 2.5x)", end=""
        )
    print(f"; beam {beam_width} = {rates['beam_over_greedy']:.2f}x greedy's time on the torch step "
          "(target <= 2x)")  # fmt: skip


def bundled_rates(args: argparse.Namespace) -> None:
    """The same comparison on the bundled model (its export cached as in use)."""
    ckpt = load_checkpoint(None)
    ids = prompt_ids(ckpt.tokenizer, min(args.prompt_tokens, ckpt.model.cfg.context // 2))
    rates = backend_rates(ckpt.model, ckpt.tokenizer, ids, args, ckpt.checksum, ckpt.path)
    print_backends(f"bundled model, prompt {len(ids)} tokens", rates, args.beam_width)


def thread_rates(args: argparse.Namespace) -> None:
    """The onnx path's greedy rate on the bundled model at one thread and at --threads (what
    `generate` uses when a second core is idle), alternated, best of --repeats."""
    ckpt = load_checkpoint(None)
    ids = prompt_ids(ckpt.tokenizer, min(args.prompt_tokens, ckpt.model.cfg.context // 2))
    runs = {}
    for n in (1, args.threads):
        onnx = open_backend("onnx", ckpt.model, ckpt.checksum, ckpt.path, n)
        runs[n] = greedy_runs(ckpt.model, ckpt.tokenizer, ids, {"onnx": onnx})["onnx"]
    best = dict.fromkeys(runs, 0.0)
    for run in runs.values():  # warm-up
        run(16)
    for _ in range(args.repeats):
        for n, run in runs.items():
            best[n] = max(best[n], decode_rate(run, args.new_tokens))
    print(f"bundled model, prompt {len(ids)} tokens, onnx path: 1 thread {best[1]:.0f} tokens/s, "
          f"{args.threads} threads {best[args.threads]:.0f} tokens/s: "
          f"**{best[args.threads] / best[1]:.2f}x**")  # fmt: skip


def long_piece_rates(args: argparse.Namespace) -> None:
    """After a 16-token prompt on the bundled model: greedy's decoding rate over a short window
    (+256 tokens), and --long-tokens new tokens timed whole (the prompt, every step and every
    slide: past the context the window drops its first quarter and re-encodes the rest, one
    forward on torch, one prefill run on the numpy path)."""
    ckpt = load_checkpoint(None)
    ids, n = prompt_ids(ckpt.tokenizer, 16), args.long_tokens
    steps = open_steps(ckpt.model, args.threads, ckpt.checksum, ckpt.path)
    runs = greedy_runs(ckpt.model, ckpt.tokenizer, ids, steps)
    short, long = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
    with torch.inference_mode():
        for run in runs.values():  # warm-up
            run(16)
        for name, run in runs.items():
            short[name] = decode_rate(run, 256)
            long[name] = n / timed(lambda run=run: run(n))
    for label, rates in (("a short window (+256 tokens)", short),
                         (f"a long piece (+{n} tokens, slides included)", long)):  # fmt: skip
        line = ", ".join(f"{name} {rate:.0f} tokens/s" for name, rate in rates.items())
        ratio = f": **{rates['onnx'] / rates['torch']:.2f}x**" if "onnx" in rates else ""
        print(f"bundled model, prompt 16 tokens, {label}: {line}{ratio}")


def original_comparison(args: argparse.Namespace) -> tuple[Transformer, PairTokenizer, list[int]]:
    """KV-cached greedy (torch step) against the original's full-window decoding."""
    torch.manual_seed(0)
    tok = PairTokenizer()
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
        f"beam {args.beam_width} (torch step): {t_beam:.2f} s vs greedy {t_greedy:.2f} s: {t_beam / t_greedy:.2f}x greedy's time"
    )
    return model, tok, ids


def web_part(args: argparse.Namespace) -> None:
    """The web app's throughput under --web-requests concurrent requests, per backend."""
    if args.web_requests == 0:
        return
    try:
        import gradio  # noqa: F401  (the server needs it)
        import gradio_client  # noqa: F401
    except ImportError:
        print("web app: skipped, the `app` extra is not installed (pip install -e '.[app]')")
        return
    backends = ("torch", "onnx") if onnxruntime_available() else ("torch",)
    runs = [web_throughput(b, args.web_requests, args.web_notes) for b in backends]
    print_web_runs(runs, args.web_notes)


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
    ap.add_argument("--long-tokens", type=int, default=2048,
                    help="new tokens of the long piece, whose window slides (0 skips it)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=2, help="greedy runs per backend (best taken)")
    ap.add_argument("--web-requests", type=int, default=16,
                    help="concurrent requests to the web app (default 16; 0 skips it)")  # fmt: skip
    ap.add_argument("--web-notes", type=int, default=64, help="new notes a web request asks for")
    args = ap.parse_args()
    if args.web_requests < 0 or args.web_notes < 1 or args.long_tokens < 0:
        ap.error("--web-requests and --long-tokens must be 0 or more and --web-notes 1 or more")
    torch.set_num_threads(args.threads)
    model, tok, ids = original_comparison(args)
    if not onnxruntime_available():
        print("onnxruntime is not installed (pip install -e '.[fast]'): torch step only")
    print_backends("seed preset", backend_rates(model, tok, ids, args), args.beam_width)
    bundled_rates(args)
    if onnxruntime_available() and args.threads > 1:
        thread_rates(args)
    if args.long_tokens:
        long_piece_rates(args)
    # The bundled model's export is cached by now, as after a first use.
    cold = {b: cold_start(64, b) for b in ("torch", "auto")}
    print(f"cold start of `tunesmith generate --notes 64`: {cold['auto']:.2f} s "
          f"(auto, export cached) vs {cold['torch']:.2f} s (--backend torch)")  # fmt: skip
    web_part(args)


if __name__ == "__main__":
    main()
