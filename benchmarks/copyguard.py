"""The copy guard's cost: greedy decoding with ``max_copy`` 0 and 16, side by side.

    python -m benchmarks.copyguard [--new-notes 128] [--rounds 3] [--threads 1]

The bundled model (it carries the memorisation index the guard reads) continues the
opening of a training file, greedily, first without the guard and then with it, in
alternating rounds so that a machine busy with other work slows both alike; the
ratio of their tokens per second is the guard's cost. The guard is built once
before timing (the Generator keeps it), as in an app that generates repeatedly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.generation import Generator
from tunesmith.tokenization.midi_io import load_midi

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "final-fantasy-piano"


def tokens_per_second(gen: Generator, prompt, new_notes: int, max_copy: int) -> tuple[float, int]:
    """Greedy tokens/s of one piece, and the new tokens it made."""
    res = gen.generate(prompt, prompt_notes=128, notes=new_notes, search="greedy",
                       max_copy=max_copy, stop_at_eos=False)  # fmt: skip
    return res.tokens_per_second, len(res.new_ids)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--new-notes", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    gen = Generator.from_pretrained(num_threads=args.threads)
    if gen.training_notes is None:
        raise SystemExit("the bundled model carries no memorisation index")
    prompt = load_midi(DATA / gen.training_notes.names[0])
    tokens_per_second(gen, prompt, 8, 16)  # warm-up; builds the guard for 16
    totals = {0: [0.0, 0], 16: [0.0, 0]}  # max_copy -> [seconds, tokens]
    for _ in range(args.rounds):
        for max_copy in (0, 16):
            rate, n = tokens_per_second(gen, prompt, args.new_notes, max_copy)
            totals[max_copy][0] += n / rate
            totals[max_copy][1] += n
    rate = {k: tokens / seconds for k, (seconds, tokens) in totals.items()}
    print(f"greedy, {args.new_notes} new notes x {args.rounds} rounds, {args.threads} thread(s)")
    for k in (0, 16):
        print(f"  max_copy {k:>2}: {rate[k]:8.1f} tokens/s")
    print(f"  guard cost: {100 * (1 - rate[16] / rate[0]):.1f}% fewer tokens/s "
          f"(ratio {rate[16] / rate[0]:.3f}; target: under 20%)")  # fmt: skip


if __name__ == "__main__":
    main()
