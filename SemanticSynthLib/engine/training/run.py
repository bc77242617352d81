"""The scaffold of every training command: DDP, seeds, progress, checkpoints and resume, the loss log, the end.

The five trainers (autoencoder, diffusion, segmenter, translator, refiner) bring their networks, batches, losses and
package; everything around them is here, once:

    run = TrainingRun(request, progress)                         # DDP context, progress, seeded torch and numpy
    run.resume({"denoiser": net, "ema": ema}, {"opt": opt})   # what checkpoints hold; restored with --resume
    run.progress.stage("training diffusion", request.steps)
    for step in range(run.start_step, request.steps):
        ...
        run.log_losses(losses, step + 1, request.steps)          # every --log-every steps: mean over ranks
        run.save(step + 1, request.steps)                         # every --checkpoint-every steps and at the end
    run.finish(lambda: save_package(...), "model package")    # main rank writes; all ranks wait; DDP closes

Checkpoints live in --checkpoint-dir (default OUT.checkpoint) and hold the named networks and optimizers and
{"step", "time_s", ...}; the log is OUT.log.jsonl beside it, appended across resumes. Only the main rank
writes either. A resumed run continues its clock: time_s counts the time of every earlier part, and trains at the
rates of its own command line (--lr, --spatial-lr), not at those saved with the optimizers.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .common import backward_step
from ..reporting.progress import Progress
from ..reporting.results import Result
from .distributed import setup


class TrainingLog:
    """Loss lines as JSON, in a file beside the checkpoint, appended across resumes."""

    def __init__(self, path: Path, enabled: bool, clock):
        # clock: seconds of training so far, the run's own, so that a resumed run's lines go on from the last
        self.path, self.enabled, self.clock = Path(path), enabled, clock

    def write(self, **record) -> None:
        if not self.enabled:
            return
        record = {"time_s": round(self.clock(), 1), **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def command_line() -> str:
    return " ".join(["semanticsynth", *sys.argv[1:]]) if sys.argv else ""


class TrainingRun:
    """One run of a training command; see the module docstring."""

    def __init__(self, request, progress: Progress | str | None = None):
        self.request = request
        self.ctx = setup(request.device)
        if not self.ctx.is_main:
            progress = "none"  # one bar for the whole run: the main rank's
        self.progress = progress if isinstance(progress, Progress) else Progress(progress or "none")
        torch.manual_seed(request.seed)
        # Each rank draws its own batches; DDP keeps the weights equal.
        self.rng = np.random.default_rng(request.seed + 1000 * self.ctx.rank)
        self.checkpoint_dir = Path(request.checkpoint_dir or f"{request.out}.checkpoint")
        self.log = TrainingLog(self.checkpoint_dir.parent / f"{Path(request.out).name}.log.jsonl", self.ctx.is_main,
                               self.elapsed)
        self.modules: dict = {}
        self.optimizers: dict = {}
        self.resumed: dict = {}  # the info of the checkpoint this run continues ({} for a fresh run)
        self._time_before = 0.0
        self._clock = time.monotonic()

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    @property
    def start_step(self) -> int:
        return int(self.resumed.get("step", 0))

    def resume(self, modules: dict, optimizers: dict) -> dict:
        """Name the networks and optimizers that checkpoints hold; with --resume restore them from the checkpoint.
        Returns the checkpoint's info ({} for a fresh run). Training time counts from here."""
        self.modules, self.optimizers = modules, optimizers
        asked = {name: [group["lr"] for group in opt.param_groups] for name, opt in optimizers.items()}
        info = load_checkpoint(self.checkpoint_dir, modules, optimizers) if self.request.resume else None
        self.resumed = info or {}
        # The optimizer state brings back the rates it was saved with; the rates this command built its optimizers
        # with (its --lr) are what the user asks for from here on, e.g. a lower rate to finish a long run.
        for name, opt in optimizers.items():
            for group, lr in zip(opt.param_groups, asked[name]):
                group["lr"] = lr
        self._time_before = float(self.resumed.get("time_s", 0.0))
        self.checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
        self._clock = time.monotonic()
        return self.resumed

    def elapsed(self) -> float:
        """Seconds of training, earlier parts of a resumed run included."""
        return self._time_before + time.monotonic() - self._clock

    def save(self, done: int, *ends: int, **extra) -> None:
        """A checkpoint after `done` steps: every --checkpoint-every steps and at each of `ends` (a stage's or the
        run's last step); `extra` goes into its info (e.g. a finished stage's final loss)."""
        if self.is_main and (done % self.request.checkpoint_every == 0 or done in ends):
            save_checkpoint(self.checkpoint_dir, self.modules, self.optimizers,
                            {"step": done, "time_s": self.elapsed(), **extra})

    def log_losses(self, losses: list[float], done: int, last: int, key: str = "loss", shown_step: int | None = None,
                   **extra) -> None:
        """Every --log-every steps (and at `last`): the mean of the recent losses over all ranks, to the log and
        the progress."""
        every = self.request.log_every
        if done % every and done != last:
            return
        mean = self.ctx.mean(float(np.mean(losses[-every:])))
        self.log.write(step=done, **{key: mean}, **extra)
        self.progress.update(done if shown_step is None else shown_step, loss=round(mean, 4))

    def step_taken(self, loss, step: int, optimizer, guarded_step, losses: list, last: int) -> bool:
        """The end of one step of a one-stage trainer: backward_step (common.py), the loss logged every
        --log-every steps and a checkpoint every --checkpoint-every; False when the step was skipped."""
        taken = backward_step(loss, step, optimizer, guarded_step)
        losses.append(loss.item())
        self.log_losses(losses, step + 1, last, skipped_steps=guarded_step.skipped)
        self.save(step + 1, last)
        return taken

    def record(self, **specific) -> dict:
        """The package's training record: what every trainer records, then its own entries."""
        return {"data": str(self.request.data), "command": command_line(), "steps": self.request.steps,
                "batch": self.request.batch, "processes": self.ctx.world_size,
                "backend": self.ctx.backend, "time_s": round(self.elapsed(), 1),
                "request": self.request.parameters(), **specific}

    def finish(self, write_package, what: str) -> Result:
        """The main rank writes the package (write_package()); every rank waits for it; DDP closes."""
        self.progress.close_bar()
        if self.is_main:
            write_package()
            self.progress.message(f"{what} written to {self.request.out}")
        self.ctx.barrier()
        self.ctx.close()
        return Result(self.request.command, {"out": str(self.request.out)}, {"request": self.request.parameters()})
