"""The training loop (METHOD.md §4-5): one loop for every method, on CPU, one GPU, or DDP via torchrun.

``train`` sets a run up (``setup``: device, DDP, data, objective, optimiser, resume), then per epoch trains
(``epoch``), validates (``validation``) and, on rank 0, logs and checkpoints (``runs``: metrics.csv,
TensorBoard, checkpoints/last.pt). A killed run resumes from its checkpoint; on CPU it ends with the same weights as
an uninterrupted one. AdamW, linear warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA.

Before the first epoch: the device must be present (``config.check_device``), the training split must fill a
batch, and the cache's arrays must be finite (``check_finite_cache``: NaN or Inf is refused, the file and subjects
named). A loss or weight that is not finite stops the run (``epoch.NonFiniteLossError``) before that epoch's
metrics row or checkpoint is written: the run folder keeps its last good epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ptacl_core import __version__
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.training import runs
from ptacl_core.training.config import TrainConfig, check_device
from ptacl_core.training.epoch import EpochTotals, NonFiniteLossError, last_good_epoch, train_epoch
from ptacl_core.training.setup import Run, environment, set_up
from ptacl_core.training.validation import validate

SCAN_CHUNK_BYTES = 64 * 2**20  # ``check_finite_cache`` reads the memory-mapped arrays in pieces of about this size


EpochHook = Callable[[dict], None]  # called on rank 0 with each finished epoch's metrics.csv row


def train(config: TrainConfig, progress: bool = True, stop_after_epochs: int | None = None,
          on_epoch: EpochHook | None = None) -> Path:
    """Train (or resume) the run ``config.name``; returns its folder. progress: a bar per epoch and a line per
    epoch; on_epoch: called with each finished epoch's metrics row (a plan's single progress bar); stop_after_epochs:
    leave after that many epochs of this call, as a kill would (tests of resume)."""
    check_device(config.device)
    run = set_up(config)
    try:
        return _train_epochs(run, progress, stop_after_epochs, on_epoch)
    finally:  # a run that stops (a non-finite loss, a kill by an exception) frees its folder for the next writer
        if run.lock is not None:
            run.lock.release()


def _train_epochs(run: Run, progress: bool, stop_after_epochs: int | None, on_epoch: EpochHook | None = None) -> Path:
    """The checks before the first epoch, then the epochs of a set-up run; returns its folder."""
    config = run.config
    check_batches(run)
    check_finite_cache(run.cache)
    writer = _describe(run) if run.rank == 0 else None
    epochs_done = 0
    try:
        for epoch in range(run.start_epoch, config.optim.epochs):
            if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
                break
            totals = train_epoch(run, epoch, progress)
            try:
                val_loss, margin = validate(run.objective, run.val_set, config.optim.batch_size, run.device,
                                            run.use_bf16, config.seed)
            except NonFiniteLossError as error:
                raise NonFiniteLossError(f"{run.name}: epoch {epoch + 1}: {error}; stopped, "
                                         f"{last_good_epoch(run, epoch)}") from error
            check_finite_weights(run, epoch)
            if run.rank == 0:
                row = _log_epoch(run, epoch, totals, val_loss, margin, writer, progress)
                if on_epoch is not None:
                    on_epoch(row)
            epochs_done += 1
    finally:
        if writer is not None:
            writer.close()
    return run.folder


def check_batches(run: Run) -> None:
    """A ValueError when the training split cannot fill one batch per process (an epoch of no step would log a
    loss of 0 and checkpoint an untrained model)."""
    per_process = len(run.train_set) // run.world
    if per_process < run.config.optim.batch_size:
        raise ValueError(f"optim.batch_size={run.config.optim.batch_size} is more than the {len(run.train_set)} training "
                         f"subjects of {run.cache.folder}" + (f" over {run.world} processes" if run.world > 1 else "")
                         + ": an epoch would have no step")


def check_finite_cache(cache: Cache) -> None:
    """A ValueError naming the array file and its first subjects when a cached ECG or cine holds NaN or Inf.
    Reads every indexed row once, ``SCAN_CHUNK_BYTES`` at a time (the memory maps stay on disk)."""
    positions = np.argsort(cache.index.row.to_numpy(dtype=np.int64), kind="stable")
    rows = cache.index.row.to_numpy(dtype=np.int64)[positions]
    for name, array in (("ecg", cache.ecg), ("cmr", cache.cmr)):
        per_row = max(int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize, 1)
        step = max(SCAN_CHUNK_BYTES // per_row, 1)
        bad: list[str] = []
        for start in range(0, len(rows), step):
            chunk = np.asarray(array[rows[start:start + step]])
            finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
            bad += [str(cache.index.subject_id.iloc[p]) for p in positions[start:start + step][~finite]]
        if bad:
            where = getattr(array, "filename", None) or f"{cache.folder} ({name})"
            raise ValueError(f"{where}: the cached {name.upper()} of {len(bad)} subject(s) holds NaN or Inf "
                             f"({bad[:5]!r}{' ...' if len(bad) > 5 else ''}); refusing to train on it: rebuild the cache")


def check_finite_weights(run: Run, epoch: int) -> None:
    """``NonFiniteLossError`` when a trained weight is NaN or Inf after an epoch (its checkpoint is not written)."""
    if run.parameters and not bool(torch.stack([torch.isfinite(p).all() for p in run.parameters]).all()):
        raise NonFiniteLossError(f"{run.name}: a weight is NaN or infinite after epoch {epoch + 1} (lower optim.lr); "
                                 f"stopped, {last_good_epoch(run, epoch)}")


def _describe(run: Run):
    """Write config.json and environment.json; the TensorBoard writer, or None without tensorboard."""
    runs.write_description(run.folder, run.saved_config, environment(run.cache) | {"geometry": run.geometry})
    try:
        from torch.utils.tensorboard import SummaryWriter  # lazy: optional (metrics.csv has everything), slow to import

        return SummaryWriter(str(runs.tensorboard_dir(run.folder)))
    except ImportError:  # tensorboard is optional: metrics.csv has everything
        return None


def _log_epoch(run: Run, epoch: int, totals: EpochTotals, val_loss: float, margin: dict, writer, progress: bool) -> dict:
    """metrics.csv's row, TensorBoard's scalars and the checkpoint of one finished epoch (rank 0); returns the row."""
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
    return row
