"""The trainer: from a data folder (or token cache) to ``RUN_DIR/{best,last}``, resumable.

A run folder holds ``last/`` (the latest checkpoint plus ``train_state.pt``),
``best/`` (the lowest validation loss so far), ``samples/*.mid``,
``metrics.jsonl``, ``curves.png`` and, for a folder of MIDI files, ``cache/``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tunesmith.errors import BadParameterError, TunesmithError
from tunesmith.model.checkpoint import load_checkpoint, save_checkpoint
from tunesmith.model.config import ModelConfig
from tunesmith.model.transformer import Transformer
from tunesmith.training.config import TrainConfig
from tunesmith.training.data import TrainingData, open_data, window_datasets
from tunesmith.training.distributed import (
    DistInfo,
    all_sum,
    barrier,
    gather_objects,
    init_distributed,
)
from tunesmith.training.loop import collate, epoch_batches, evaluate, steps_per_epoch, train_step
from tunesmith.training.metrics import MetricsLogger, truncate_metrics
from tunesmith.training.optim import build_optimizer
from tunesmith.training.setup import build_model
from tunesmith.training.state import (
    BEST,
    LAST,
    SAMPLES,
    check_fresh_run_dir,
    check_restartable,
    check_resume_compatible,
    recover_run_dir,
    restore_training,
    resumable_checkpoint,
    rng_state,
    saved_run,
    seed_everything,
    set_rng_state,
    start_afresh,
    write_run_config,
)


class Trainer:
    """One training run; construct it (all checks happen here, before any write), then :meth:`run`."""

    def __init__(
        self,
        cfg: TrainConfig,
        data: str | Path,
        run_dir: str | Path,
        resume: bool = False,
        dist: DistInfo | None = None,
        progress: bool = True,
    ) -> None:
        self.dist = dist or init_distributed()
        # Subnormal floats (tiny attention probabilities and gradients) make CPU
        # element-wise ops up to 7x slower; the modern style hits them constantly.
        torch.set_flush_denormal(True)
        self.run_dir = Path(run_dir)
        self.progress = progress and self.dist.is_main
        saved = self._open_run_dir(resume)
        # --resume of a run killed before its first checkpoint starts afresh.
        self.resume, self.restart = saved is not None, resume and saved is None
        if cfg.wandb and importlib.util.find_spec("wandb") is None:
            raise TunesmithError("--wandb needs the wandb package: pip install wandb")
        base = None
        if cfg.init_from is not None and saved is None:
            base = load_checkpoint(cfg.init_from)
            if base.tokenizer.name != cfg.tokenizer:
                raise BadParameterError(
                    f"--init-from {cfg.init_from}: the checkpoint's tokenizer is "
                    f"{base.tokenizer.name!r}, not {cfg.tokenizer!r} (leave --tokenizer out)"
                )
            if base.model.cfg.bar_positions:  # the model keeps them: its data must carry them
                cfg = replace(cfg, bar_positions=True)
        self.data = self._open_data(cfg, data, saved, base)
        self.tokenizer = self.data.tokenizer
        self.train_set, self.val_set = window_datasets(self.data, cfg)
        self.steps_per_epoch = steps_per_epoch(
            len(self.train_set), self.dist.world_size, cfg.batch_size
        )
        self.cfg = cfg.resolved(self.steps_per_epoch)
        seed_everything(self.cfg.seed)  # the same initial weights on every rank
        self.model = self._build_model(saved, base.model if base else None)
        self.model.to(self.dist.device)
        if self.cfg.precision == "auto" and not self.resume:
            self.cfg = replace(self.cfg, precision=self._measure_precision())
        self.optimizer, self.scheduler = build_optimizer(
            self.model, self.cfg, self.model.cfg.d_model
        )
        self.step, self.best_val, self.tokens_seen, self.elapsed = 0, math.inf, 0, 0.0
        self._lr = 0.0
        # The training loss summed since the last log record (loss sum, correct,
        # count) and that record: both outlive a checkpoint, so a resumed run logs
        # what an uninterrupted one does.
        self._train_acc = torch.zeros(3, dtype=torch.float64, device=self.dist.device)
        self._last_train: dict[str, Any] = {}
        # Ranks differ in dropout masks only (one process is rank 0: seed + 0).
        seed_everything(self.cfg.seed + self.dist.rank)
        if self.resume:
            self._restore()
        elif self.restart and self.dist.is_main:
            start_afresh(self.run_dir)

    def _open_data(
        self,
        cfg: TrainConfig,
        data: str | Path,
        saved: tuple[dict[str, Any], TrainConfig] | None,
        base: Any,
    ) -> TrainingData:
        """The run's token cache and tokenizer (see :func:`open_data`)."""
        # A resumed run keeps the fill-in ids its model was saved with.
        infill = cfg.fim_rate > 0 or bool(saved and saved[0].get("tokenizer", {}).get("infill"))
        return open_data(
            Path(data),
            self.run_dir,
            cfg.tokenizer,
            base.tokenizer if base else None,
            self.dist,
            infill,
            progress=self.progress,
        )

    def _build_model(
        self, saved: tuple[dict[str, Any], TrainConfig] | None, base: Transformer | None
    ) -> Transformer:
        """The saved run's model (weights restored later), or a new one / a copy of ``base``."""
        if saved is None:
            return build_model(self.cfg, self.tokenizer.vocab_size, self.tokenizer.pad_id, base)
        model_cfg = ModelConfig.from_dict(saved[0]["model"])
        check_resume_compatible(*saved, self.cfg, model_cfg, self.data.info)
        return Transformer(model_cfg, pad_id=self.tokenizer.pad_id)

    def _measure_precision(self) -> str:
        """fp32 or bf16, whichever trains faster here with the same loss (see ``precision``)."""
        from tunesmith.training.precision import choose_precision

        n = min(1, len(self.train_set))
        x, y, bar_pos = collate(self.train_set, list(range(n)), self.dist.device)
        probe = choose_precision(
            self.model, x, y, self.tokenizer.pad_id, self.dist, bar_pos=bar_pos
        )
        if self.dist.is_main:
            print(probe.line(), flush=True)
        return probe.chosen

    # -- state ------------------------------------------------------------------
    def _open_run_dir(self, resume: bool) -> tuple[dict[str, Any], TrainConfig] | None:
        """Check the run folder; with ``resume``, repair a kill's leftovers and read the run.

        Returns the saved ``config.json`` and TrainConfig, or ``None`` for a new
        run (or a run killed before its first checkpoint: it starts afresh).
        """
        if not resume:
            check_fresh_run_dir(self.run_dir)
            return None
        if self.dist.is_main:
            recover_run_dir(self.run_dir)
        barrier(self.dist)
        if resumable_checkpoint(self.run_dir) is None:
            check_restartable(self.run_dir)
            return None
        return saved_run(self.run_dir)

    def _restore(self) -> None:
        """The saved run's weights, optimizer, schedule, counters and RNG streams."""
        state = restore_training(self.run_dir, self.model, self.optimizer, self.scheduler)
        self.step, self.best_val = state["step"], state["best_val"]
        self.tokens_seen, self.elapsed = state["tokens_seen"], state["elapsed"]
        # Checkpoints before these were kept lose only the partial log interval.
        if "train_acc" in state and self.dist.is_main:  # the sum over ranks, kept by rank 0
            self._train_acc = state["train_acc"].to(self.dist.device, torch.float64)
        self._last_train = dict(state.get("last_train_log", {}))
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        elif self.dist.is_main:
            warnings.warn(
                "resuming with another number of processes: RNG streams restart", stacklevel=2
            )
        if self.dist.is_main:
            truncate_metrics(self.run_dir, self.step)

    def _train_state(self) -> dict[str, Any]:
        epoch, batch = divmod(self.step, self.steps_per_epoch)
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": gather_objects(self.dist, rng_state()),  # one per rank, in rank order
            "step": self.step,
            "epoch": epoch,
            "batch_in_epoch": batch,
            "best_val": self.best_val,
            "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed,
            "world_size": self.dist.world_size,
            "train_acc": all_sum(self.dist, self._train_acc).cpu(),
            "last_train_log": dict(self._last_train),
        }

    def _extra(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"train": self.cfg.to_dict(), "data": self.data.info, "metrics": metrics}

    def _checkpoint(self, metrics: dict[str, Any], val_loss: float) -> None:
        improved = val_loss < self.best_val
        self.best_val = min(self.best_val, val_loss)  # before the state is taken: resume sees it
        state = self._train_state()  # collective: every rank takes part
        if not self.dist.is_main:
            return
        extra = self._extra(metrics)
        # best/ first: a kill before last/ is whole resumes from the previous
        # last/, which redoes this evaluation and so writes best/ again.
        if improved or not (self.run_dir / BEST).exists():
            save_checkpoint(self.run_dir / BEST, self.model, self.tokenizer, extra)
        save_checkpoint(self.run_dir / LAST, self.model, self.tokenizer, extra, train_state=state)

    # -- the loop ---------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to ``max_steps``; returns the final metrics."""
        cfg, dist = self.cfg, self.dist
        assert cfg.max_steps is not None
        logger = self._start_logging()
        _import_what_evaluations_use(cfg.sample_notes > 0)
        # The only buffers are constant position tables: no need to broadcast them.
        ddp = (
            DistributedDataParallel(self.model, broadcast_buffers=False)
            if dist.enabled
            else self.model
        )
        ddp.train()
        window = cfg.seq_len * cfg.batch_size * dist.world_size
        # In a log file (not a terminal) a bar line every 30 s is plenty.
        interval = 0.1 if sys.stderr.isatty() else 30.0
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            mininterval=interval,
        )
        t_log = time.perf_counter()
        try:
            while self.step < cfg.max_steps:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                self.train_set.set_epoch(epoch)
                for _, idx in epoch_batches(
                    len(self.train_set), dist, cfg.batch_size, cfg.seed, epoch, start
                ):
                    self._train_acc += self._step(ddp, idx, window)
                    if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                        self._last_train = self._log_train(logger, bar, epoch, window, t_log)
                        self._train_acc.zero_()
                        t_log = time.perf_counter()
                    bar.update(1)
                    if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                        self._evaluate(logger, bar)
                        t_log = time.perf_counter()  # evaluation time is not training throughput
                    if self.step >= cfg.max_steps:
                        break
        finally:
            bar.close()
            logger.close()
        if dist.is_main:
            from tunesmith.training.plot import plot_run

            plot_run(self.run_dir)
        return self._last_train

    def _start_logging(self) -> MetricsLogger:
        """Create the run folder, record the config the run starts with, open the logs."""
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_run_config(self.run_dir, self.cfg)
        barrier(self.dist)
        return MetricsLogger(
            self.run_dir,
            self.dist.is_main,
            self.cfg.tensorboard,
            self.cfg.wandb,
            self._extra({}),
            resume=self.resume or self.restart,
        )

    def _step(self, ddp: torch.nn.Module, idx: list[int], window: int) -> torch.Tensor:
        """One optimizer step on windows ``idx``; returns (loss sum, correct, count)."""
        t0 = time.perf_counter()
        x, y, bar_pos = collate(self.train_set, idx, self.dist.device)
        loss_sum, correct, count = train_step(
            ddp, x, y, self.tokenizer.pad_id, self.dist, self.cfg.precision, bar_pos
        )
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self._lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.tokens_seen += window
        self.elapsed += time.perf_counter() - t0
        return torch.stack([loss_sum.double(), correct.double(), count.double()])

    def _log_train(
        self,
        logger: MetricsLogger,
        bar: tqdm,
        epoch: int,
        window: int,
        t_log: float,
    ) -> dict[str, Any]:
        """Log the training loss and accuracy since the last record (summed over ranks)."""
        t = all_sum(self.dist, self._train_acc)
        n_steps = (self.step - 1) % self.cfg.log_every + 1
        record = {
            "step": self.step,
            "split": "train",
            "epoch": epoch,
            "loss": float(t[0] / t[2].clamp_min(1)),
            "acc": float(t[1] / t[2].clamp_min(1)),
            "lr": self._lr,
            "tokens": self.tokens_seen,
            "tok_s": n_steps * window / max(time.perf_counter() - t_log, 1e-9),
            "elapsed": round(self.elapsed, 2),
        }
        logger.log(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tok_s']:.0f}", refresh=False)
        return record

    def _evaluate(self, logger: MetricsLogger, bar: tqdm) -> None:
        cfg, train_metrics = self.cfg, self._last_train
        val_loss, val_acc, n = evaluate(
            self.model,
            self.val_set,
            self.dist,
            cfg.batch_size,
            self.tokenizer.pad_id,
            cfg.precision,
            cfg.eval_batches,
        )
        metrics = {"step": self.step, "tokens": self.tokens_seen, "elapsed": round(self.elapsed, 2)}
        metrics.update({f"train_{k}": train_metrics.get(k) for k in ("loss", "acc")})
        if n:
            metrics.update(val_loss=val_loss, val_acc=val_acc)
            record = {"step": self.step, "split": "val", "loss": val_loss, "acc": val_acc}
            logger.log({**record, "tokens": self.tokens_seen})
        # Without a validation split, "best" follows the training loss.
        score = val_loss if n else float(train_metrics.get("loss", math.inf))
        self._checkpoint(metrics, score)
        if self.dist.is_main:
            parts = [f"step {self.step}:"]
            if "loss" in train_metrics:  # none before the first --log-every interval ends
                parts.append(
                    f"train loss {train_metrics['loss']:.4f} acc {train_metrics['acc']:.3f} |"
                )
            parts.append(f"val loss {val_loss:.4f} acc {val_acc:.3f}" if n else "no val split")
            bar.write(" ".join(parts))
            self._sample()

    def _sample(self) -> None:
        if self.cfg.sample_notes == 0:
            return
        from tunesmith.training.sample import save_sample

        try:
            save_sample(
                self.model,
                self.tokenizer,
                self.run_dir / SAMPLES,
                self.step,
                self.cfg.sample_notes,
                self.cfg.seed,
            )
        except Exception as err:  # noqa: BLE001 - a sample is a by-product; it must not end an hours-long run
            warnings.warn(
                f"step {self.step}: could not write a sample ({type(err).__name__}: {err})",
                stacklevel=2,
            )


def _import_what_evaluations_use(samples: bool) -> None:
    """Import now the modules the evaluations import at their first use: a run of hours must
    not read the package's source again later (edited or upgraded meanwhile, a module of
    another version imports into this one's and the run ends)."""
    import tunesmith.training.plot  # noqa: F401

    if samples:
        import tunesmith.model.backends  # noqa: F401  (the sample's decoding step)
        import tunesmith.training.sample  # noqa: F401
