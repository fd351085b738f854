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
import time
from pathlib import Path

from tunesmith.generation import Generator
from tunesmith.tokenization.midi_io import load_midi

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "final-fantasy-piano"


def timed_piece(gen: Generator, prompt, new_notes: int, max_copy: int) -> tuple[float, float, int]:
    """Wall and CPU seconds of one greedy piece, and the new tokens it made.

    CPU time (one torch thread) counts only the work done, not the waits for a busy
    machine's cores, so its ratio is the steadier figure when other jobs run.
    """
    cpu = time.process_time()
    res = gen.generate(prompt, prompt_notes=128, notes=new_notes, search="greedy",
                       max_copy=max_copy, stop_at_eos=False)  # fmt: skip
    return res.seconds, time.process_time() - cpu, len(res.new_ids)


def lookup_ms_per_note(gen: Generator, prompt, new_notes: int) -> float:
    """The guard's own work per new note: one lookup of the last 16 notes (a second check
    of noisy wall-clock ratios, since it does not depend on the model's speed)."""
    res = gen.generate(prompt, prompt_notes=128, notes=new_notes, search="greedy", max_copy=16)
    guard = gen.copy_guard(16, asked=True)
    pitches, durs = res.grid[:, 1].tolist(), res.grid[:, 2].tolist()
    ends = range(res.n_prompt_notes, len(pitches))
    t0 = time.process_time()
    for end in ends:
        guard.forbidden_next(pitches[:end], durs[:end])
    return 1000 * (time.process_time() - t0) / max(len(ends), 1)


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
    timed_piece(gen, prompt, 8, 16)  # warm-up; builds the guard for 16
    totals = {0: [0.0, 0.0, 0], 16: [0.0, 0.0, 0]}  # max_copy -> [wall s, CPU s, tokens]
    for _ in range(args.rounds):
        for max_copy in (0, 16):
            for i, value in enumerate(timed_piece(gen, prompt, args.new_notes, max_copy)):
                totals[max_copy][i] += value
    print(f"greedy, {args.new_notes} new notes x {args.rounds} rounds, {args.threads} thread(s)")
    for i, clock in enumerate(("wall", "CPU")):
        rate = {k: t[2] / t[i] for k, t in totals.items()}
        print(f"  {clock:>4} time: max_copy 0 {rate[0]:8.1f} tokens/s, max_copy 16 "
              f"{rate[16]:8.1f} tokens/s: guard cost {100 * (1 - rate[16] / rate[0]):.1f}% "
              f"(ratio {rate[16] / rate[0]:.3f}; target: under 20%)")  # fmt: skip
    decode_ms = 1000 * totals[0][1] / (args.new_notes * args.rounds)  # CPU
    ms = lookup_ms_per_note(gen, prompt, args.new_notes)
    print(f"  guard lookups: {ms:.2f} CPU ms per note vs {decode_ms:.1f} of decoding "
          f"({100 * ms / decode_ms:.1f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
