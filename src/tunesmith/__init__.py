"""tunesmith: a decoder-only Transformer that composes piano music.

The small public API::

    from tunesmith import Generator
    gen = Generator.from_pretrained()          # the bundled model
    result = gen.generate(None, notes=64, search="top_k", seed=1)
    result.score.dump_midi("song.mid")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunesmith.errors import TunesmithError

__version__ = "0.1.0"
__all__ = ["Generator", "TunesmithError", "load_midi", "save_midi", "__version__"]

if TYPE_CHECKING:
    from tunesmith.generation.generator import Generator
    from tunesmith.tokenization.midi_io import load_midi, save_midi


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import tunesmith` (and the CLI's --help) fast: torch is heavy.
    if name == "Generator":
        from tunesmith.generation.generator import Generator

        return Generator
    if name in ("load_midi", "save_midi"):
        from tunesmith.tokenization import midi_io

        return getattr(midi_io, name)
    raise AttributeError(f"module 'tunesmith' has no attribute {name!r}")
