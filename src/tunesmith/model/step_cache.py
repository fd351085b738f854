"""The exported decoding step on disk, keyed by the checkpoint's checksum.

``CACHE_DIR/step-<checksum>.onnx`` holds the graph (weights inside), and, for a
model ONNX Runtime's fused attention can run, ``step-<checksum>.fused.onnx`` the
batch-1 step with it (:mod:`tunesmith.model.fused_graph`); ``step-<checksum>.json``
beside them says what they were built from: the checksum, the model config, the
step's format version and each graph file's own SHA-256. A file that does
not match (stale format, another checkpoint, truncated or altered bytes) is rebuilt
with a one-line notice on stderr; files are written under a temporary name and
renamed into place, so a kill mid-build never leaves a half-written artifact in use.

``CACHE_DIR`` is ``$TUNESMITH_CACHE_DIR``, else ``$XDG_CACHE_HOME/tunesmith``, else
``~/.cache/tunesmith``. ``python -m tunesmith.model.step_cache [CHECKPOINT]`` builds
one ahead of time (the bundled model when no folder is given).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import TunesmithError
from tunesmith.model.backend_names import fused_supported
from tunesmith.model.config import ModelConfig

if TYPE_CHECKING:
    from tunesmith.model.transformer import Transformer

# Bump when StepGraph's or FusedStepGraph's inputs, outputs or computation change (or
# the files kept): older files are then stale. 3: the fused batch-1 graph. 4: built only
# from float32 weights checked finite (a cached export is then trusted without them). 5: the
# fused graph takes positions in the bar too. 6: the fused graph takes S tokens (a prefill).
# 7: the feed-forward slices at fixed sizes (no shape arithmetic in the graphs).
STEP_FORMAT = 7


def cache_dir() -> Path:
    """Where exported steps live (see the module's docstring)."""
    if os.environ.get("TUNESMITH_CACHE_DIR"):
        return Path(os.environ["TUNESMITH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tunesmith"


@dataclass(frozen=True)
class StepArtifact:
    """The graph and metadata files of one checkpoint's exported step."""

    checksum: str
    folder: Path

    @property
    def graph(self) -> Path:
        return self.folder / f"step-{self.checksum}.onnx"

    @property
    def fused(self) -> Path:
        return self.folder / f"step-{self.checksum}.fused.onnx"

    @property
    def meta(self) -> Path:
        return self.folder / f"step-{self.checksum}.json"

    def expected(self, cfg: ModelConfig) -> dict[str, Any]:
        """The metadata a valid artifact of a model of ``cfg`` has, the graphs' hashes aside."""
        return {"format": STEP_FORMAT, "checksum": self.checksum, "model": cfg.to_dict()}

    def problem(self, cfg: ModelConfig, loaded_only: bool = False) -> str | None:
        """Why the files on disk cannot serve a model of ``cfg`` (None: they can).

        ``loaded_only``: hash only the graph a batch-1 decoding loads at once (the fused one
        when the model has it); the step graph is then checked when it is loaded
        (:meth:`check_graph`), which a decoding of one row never does.
        """
        if not self.graph.is_file() and not self.meta.is_file():
            return "missing"
        graphs = self._graphs(cfg)
        if loaded_only and len(graphs) > 1:
            graphs.pop("sha256")
        try:
            meta = json.loads(self.meta.read_text())
            digests = {key: _sha256(path) for key, path in graphs.items()}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            return f"unreadable ({type(err).__name__})"
        if not isinstance(meta, dict):
            return "unreadable (metadata is not an object)"
        if meta.get("checksum") != self.checksum:
            return f"from another checkpoint ({meta.get('checksum')})"
        if meta.get("format") != STEP_FORMAT or meta.get("model") != cfg.to_dict():
            return "stale (another format or model config)"
        if any(meta.get(key) != digest for key, digest in digests.items()):
            return "truncated or altered (its checksum does not match)"
        return None

    def check_graph(self) -> None:
        """Refuse, in one line, a step graph whose bytes differ from those the metadata
        recorded (the graph a :meth:`problem` of ``loaded_only`` did not hash)."""
        try:
            expected = json.loads(self.meta.read_text()).get("sha256")
            ok = expected == _sha256(self.graph)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            ok = False
        if not ok:
            self.meta.unlink(missing_ok=True)  # the next run rebuilds the export
            raise TunesmithError(
                f"cached ONNX step {self.graph} is truncated or altered; it is rebuilt next run"
            )

    def _graphs(self, cfg: ModelConfig) -> dict[str, Path]:
        """The graph files a model of ``cfg`` has, by the metadata key of their SHA-256."""
        graphs = {"sha256": self.graph}
        if fused_supported(cfg):
            graphs["fused_sha256"] = self.fused
        return graphs

    def build(self, model: Transformer) -> None:
        """Export ``model``'s steps to the graph files, then write the metadata."""
        from tunesmith.model.checkpoint import check_finite_weights
        from tunesmith.model.fused_graph import export_fused_step
        from tunesmith.model.step_graph import export_step

        # Checked here, once: a run that finds the export valid trusts it without the weights.
        check_finite_weights(model, f"checkpoint {self.checksum}")
        self.folder.mkdir(parents=True, exist_ok=True)
        graphs = self._graphs(model.cfg)
        exporters = {"sha256": export_step, "fused_sha256": export_fused_step}
        tmps = {key: _temp_file(self.folder) for key in graphs}
        try:
            digests = {}
            for key, tmp in tmps.items():
                exporters[key](model, tmp)
                digests[key] = _sha256(tmp)
            # Metadata first, the graphs last: a kill in between leaves a mismatch, rebuilt.
            _write_atomic(self.meta, json.dumps({**self.expected(model.cfg), **digests}))
            for key, tmp in tmps.items():
                os.replace(tmp, graphs[key])
        finally:
            for tmp in tmps.values():
                tmp.unlink(missing_ok=True)

    def ensure(self, model: Transformer) -> Path:
        """The graph file, (re)built first when it is missing or does not match ``model``."""
        problem = self.problem(model.cfg)
        if problem is not None:
            if problem != "missing":
                print(f"tunesmith: cached ONNX step {self.graph} is {problem}; rebuilding it",
                      file=sys.stderr)  # fmt: skip
            self.build(model)
        return self.graph


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temp_file(folder: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".step-", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Build the step of a checkpoint folder (default: the bundled model) into the cache."""
    from tunesmith.model.checkpoint import load_checkpoint

    args = sys.argv[1:] if argv is None else argv
    ckpt = load_checkpoint(args[0] if args else None)
    path = StepArtifact(ckpt.checksum, cache_dir()).ensure(ckpt.model)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
