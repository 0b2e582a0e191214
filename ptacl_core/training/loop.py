"""The training loop (METHOD.md §4-5): one loop for every method, on CPU, one GPU, or DDP via torchrun.

``train`` sets a run up (``setup``: device, DDP, data, objective, optimiser, resume), then per epoch trains
(``epoch``), validates (``validation``) and, on rank 0, logs and checkpoints (``runs``: metrics.csv,
TensorBoard, checkpoints/last.pt). A killed run resumes from its checkpoint; on CPU it ends with the same weights as
an uninterrupted one. AdamW, linear warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA.
"""

from __future__ import annotations

from pathlib import Path

from ptacl_core import __version__
from ptacl_core.training import runs
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.epoch import EpochTotals, train_epoch
from ptacl_core.training.setup import Run, environment, set_up
from ptacl_core.training.validation import validate


def train(config: TrainConfig, progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Train (or resume) the run ``config.name``; returns its folder. stop_after_epochs: leave after that
    many epochs of this call, as a kill would (tests of resume)."""
    run = set_up(config)
    writer = _describe(run) if run.rank == 0 else None
    epochs_done = 0
    for epoch in range(run.start_epoch, config.optim.epochs):
        if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
            break
        totals = train_epoch(run, epoch, progress)
        val_loss, margin = validate(run.objective, run.val_set, config.optim.batch_size, run.device, run.use_bf16,
                                    config.seed)
        if run.rank == 0:
            _log_epoch(run, epoch, totals, val_loss, margin, writer, progress)
        epochs_done += 1
    if writer is not None:
        writer.close()
    return run.folder


def _describe(run: Run):
    """Write config.json and environment.json; the TensorBoard writer, or None without tensorboard."""
    runs.write_description(run.folder, run.saved_config, environment(run.cache) | {"geometry": run.geometry})
    try:
        from torch.utils.tensorboard import SummaryWriter  # lazy: optional (metrics.csv has everything), slow to import

        return SummaryWriter(str(runs.tensorboard_dir(run.folder)))
    except ImportError:  # tensorboard is optional: metrics.csv has everything
        return None


def _log_epoch(run: Run, epoch: int, totals: EpochTotals, val_loss: float, margin: dict, writer, progress: bool) -> None:
    """metrics.csv's row, TensorBoard's scalars and the checkpoint of one finished epoch (rank 0)."""
    config = run.config
    samples = totals.steps * config.optim.batch_size * run.world
    means = totals.means()
    row = {"epoch": epoch + 1, "loss": means.pop("loss"), "val_loss": val_loss, **margin, **means,
           "lr": run.scheduler.get_last_lr()[0], "samples_per_s": samples / max(totals.seconds, 1e-9),
           "seconds": totals.seconds}
    runs.append_metrics(run.folder, row)
    if writer is not None:
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key, value, epoch + 1)
        writer.flush()
    runs.save_checkpoint({"objective": run.objective.state_dict(), "optimizer": run.optimizer.state_dict(),
                          "scheduler": run.scheduler.state_dict(), "epoch": epoch, "config": run.saved_config,
                          "kit_version": __version__, "data_fingerprint": run.cache.fingerprint}, run.folder)
    if progress:
        print(f"{run.name}: epoch {epoch + 1}/{config.optim.epochs} loss {row['loss']:.4f} val {val_loss:.4f} "
              f"({row['samples_per_s']:.0f} pairs/s)", flush=True)
