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

from tunesmith.errors import TunesmithError
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
    check_resume_compatible,
    load_train_state,
    rng_state,
    saved_run,
    seed_everything,
    set_rng_state,
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
        self.resume = resume
        saved: dict[str, Any] | None = None
        if resume:
            saved, saved_train = saved_run(self.run_dir)
        else:
            check_fresh_run_dir(self.run_dir)
        if cfg.wandb and importlib.util.find_spec("wandb") is None:
            raise TunesmithError("--wandb needs the wandb package: pip install wandb")
        base = None
        if cfg.init_from is not None and not resume:
            base = load_checkpoint(cfg.init_from)
        # A resumed run keeps the fill-in ids its model was saved with.
        infill = cfg.fim_rate > 0 or bool(saved and saved.get("tokenizer", {}).get("infill"))
        self.data: TrainingData = open_data(
            Path(data),
            self.run_dir,
            cfg.tokenizer,
            base.tokenizer if base else None,
            self.dist,
            infill,
        )
        self.tokenizer = self.data.tokenizer
        self.train_set, self.val_set = window_datasets(self.data, cfg)
        self.steps_per_epoch = steps_per_epoch(
            len(self.train_set), self.dist.world_size, cfg.batch_size
        )
        self.cfg = cfg.resolved(self.steps_per_epoch)
        seed_everything(self.cfg.seed)  # the same initial weights on every rank
        if resume and saved is not None:
            model_cfg = ModelConfig.from_dict(saved["model"])
            self.model = Transformer(model_cfg, pad_id=self.tokenizer.pad_id)
            check_resume_compatible(saved, saved_train, self.cfg, model_cfg, self.data.info)
        else:
            self.model = build_model(
                self.cfg,
                self.tokenizer.vocab_size,
                self.tokenizer.pad_id,
                base.model if base else None,
            )
        self.model.to(self.dist.device)
        if self.cfg.precision == "auto" and not resume:
            self.cfg = replace(self.cfg, precision=self._measure_precision())
        self.optimizer, self.scheduler = build_optimizer(
            self.model, self.cfg, self.model.cfg.d_model
        )
        self.step, self.best_val, self.tokens_seen, self.elapsed = 0, math.inf, 0, 0.0
        self._lr = 0.0
        # Ranks differ in dropout masks only (one process is rank 0: seed + 0).
        seed_everything(self.cfg.seed + self.dist.rank)
        if resume:
            self._restore()

    def _measure_precision(self) -> str:
        """fp32 or bf16, whichever trains faster here with the same loss (see ``precision``)."""
        from tunesmith.training.precision import choose_precision

        n = min(1, len(self.train_set))
        x, y = collate(self.train_set, list(range(n)), self.dist.device)
        probe = choose_precision(self.model, x, y, self.tokenizer.pad_id, self.dist)
        if self.dist.is_main:
            print(probe.line(), flush=True)
        return probe.chosen

    # -- state ------------------------------------------------------------------
    def _restore(self) -> None:
        from safetensors.torch import load_file

        state = load_train_state(self.run_dir)
        weights = load_file(str(self.run_dir / LAST / "model.safetensors"))
        if self.model.cfg.style == "modern":
            weights.setdefault("head.weight", weights["embed.weight"])
        self.model.load_state_dict({k: v.float() for k, v in weights.items()})
        self.optimizer.load_state_dict(state["optimizer"])
        sched = dict(state["scheduler"])
        # None keeps this run's schedule objects: a resume may extend the horizon.
        sched["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)
        self.scheduler.load_state_dict(sched)
        for group, base_lr, fn in zip(
            self.optimizer.param_groups,
            self.scheduler.base_lrs,
            self.scheduler.lr_lambdas,
            strict=True,
        ):
            group["lr"] = base_lr * fn(self.scheduler.last_epoch)
        self.step, self.best_val = state["step"], state["best_val"]
        self.tokens_seen, self.elapsed = state["tokens_seen"], state["elapsed"]
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
        save_checkpoint(self.run_dir / LAST, self.model, self.tokenizer, extra, train_state=state)
        if improved or not (self.run_dir / BEST).exists():
            save_checkpoint(self.run_dir / BEST, self.model, self.tokenizer, extra)

    # -- the loop ---------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to ``max_steps``; returns the final metrics."""
        cfg, dist = self.cfg, self.dist
        assert cfg.max_steps is not None
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        barrier(dist)
        logger = MetricsLogger(
            self.run_dir,
            dist.is_main,
            cfg.tensorboard,
            cfg.wandb,
            self._extra({}),
            resume=self.resume,
        )
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
        acc = torch.zeros(3, dtype=torch.float64, device=dist.device)  # loss sum, correct, count
        last: dict[str, Any] = {}
        t_log = time.perf_counter()
        try:
            while self.step < cfg.max_steps:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                self.train_set.set_epoch(epoch)
                for _, idx in epoch_batches(
                    len(self.train_set), dist, cfg.batch_size, cfg.seed, epoch, start
                ):
                    acc += self._step(ddp, idx, window)
                    if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                        last = self._log_train(logger, bar, acc, epoch, window, t_log)
                        acc.zero_()
                        t_log = time.perf_counter()
                    bar.update(1)
                    if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                        last = self._evaluate(logger, last, bar)
                        t_log = time.perf_counter()  # evaluation time is not training throughput
                    if self.step >= cfg.max_steps:
                        break
        finally:
            bar.close()
            logger.close()
        if dist.is_main:
            from tunesmith.training.plot import plot_run

            plot_run(self.run_dir)
        return last

    def _step(self, ddp: torch.nn.Module, idx: list[int], window: int) -> torch.Tensor:
        """One optimizer step on windows ``idx``; returns (loss sum, correct, count)."""
        t0 = time.perf_counter()
        x, y = collate(self.train_set, idx, self.dist.device)
        loss_sum, correct, count = train_step(
            ddp, x, y, self.tokenizer.pad_id, self.dist, self.cfg.precision
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
        acc: torch.Tensor,
        epoch: int,
        window: int,
        t_log: float,
    ) -> dict[str, Any]:
        """Log the training loss and accuracy since the last record (summed over ranks)."""
        t = all_sum(self.dist, acc)
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

    def _evaluate(
        self, logger: MetricsLogger, train_metrics: dict[str, Any], bar: tqdm
    ) -> dict[str, Any]:
        cfg = self.cfg
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
            train = train_metrics.get("loss", math.nan), train_metrics.get("acc", math.nan)
            bar.write(
                f"step {self.step}: train loss {train[0]:.4f} acc {train[1]:.3f}"
                + (f" | val loss {val_loss:.4f} acc {val_acc:.3f}" if n else " | no val split")
            )
            self._sample()
        return train_metrics

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
