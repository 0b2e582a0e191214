"""One training epoch (METHOD.md §4-5): the epoch's seeded shuffling and masking, then forward, backward, clip and
step per batch, under bf16 autocast on CUDA.

Shuffling, augmentation and masking are seeded per (seed, epoch) (``epoch_seed``), so on CPU a resumed run ends
with the same weights as an uninterrupted one.

Every step's loss is checked before its backward pass: a loss that is NaN or infinite stops the run with
``NonFiniteLossError`` (epoch, step, each loss term, the batch's subjects whose inputs are not finite), before the
step changes a weight or the epoch writes a checkpoint, so the run folder keeps its last good epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ptacl_core.preprocessing.dataset import batch_loader
from ptacl_core.training import runs
from ptacl_core.training.setup import Run

EPOCH_SEED_STRIDE = 1000  # epoch e of seed s draws from seed s * 1000 + e: distinct for < 1000 epochs


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of one epoch of a run (shuffling order, MAE masks): resumable, distinct per (seed, epoch)."""
    return seed * EPOCH_SEED_STRIDE + epoch


class NonFiniteLossError(ValueError):
    """A training or validation loss (or a trained weight) that is NaN or infinite: the run stops, and its
    checkpoint keeps the last good epoch. A ValueError, so the command line reports it in one line (status 2)."""


def all_finite(run: Run, finite: bool) -> bool:
    """Whether every process found its value finite (one flag all-reduced under DDP, so that all stop together)."""
    if run.world == 1:
        return finite
    flag = torch.tensor([1.0 if finite else 0.0], device=run.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() > 0)


def non_finite_inputs(batch: dict) -> str:
    """The batch's subjects whose ECG or cine holds NaN or Inf, as text ("" when every input is finite)."""
    found = []
    for key in ("ecg", "cmr"):
        bad = ~torch.isfinite(batch[key].flatten(1)).all(dim=1)
        if bad.any():
            ids = [batch["subject_id"][i] for i in torch.nonzero(bad).flatten().tolist()]
            found.append(f"{key} of subject(s) {ids[:5]!r}{' ...' if len(ids) > 5 else ''} holds NaN or Inf")
    return "; ".join(found)


def last_good_epoch(run: Run, epoch: int) -> str:
    """What the run folder keeps when epoch ``epoch`` (0-based) fails: the checkpoint of the epoch before, or none."""
    if epoch > 0 and runs.checkpoint_path(run.folder).exists():
        return f"{runs.checkpoint_path(run.folder)} keeps epoch {epoch}"
    return "no checkpoint was written"


def stop_on_non_finite_loss(run: Run, value: float, parts: dict, epoch: int, step: int, batch: dict) -> None:
    """Raise ``NonFiniteLossError`` naming the epoch, the step and each term when a step's loss is not finite."""
    if all_finite(run, math.isfinite(value)):
        return
    where = f"at epoch {epoch + 1}, step {step}"
    if math.isfinite(value):
        raise NonFiniteLossError(f"{run.name}: another process's training loss is not finite {where}; stopped, "
                                 f"{last_good_epoch(run, epoch)}")
    terms = ", ".join(f"{key} term {float(part):.4g}" for key, part in parts.items()) or (
        f"{type(run.objective).__name__} objective")
    inputs = non_finite_inputs(batch)
    cause = f"the cache {run.cache.folder}: {inputs}" if inputs else "lower optim.lr or check the cache"
    raise NonFiniteLossError(f"{run.name}: the training loss is {value} {where} ({terms}); {cause}; stopped, "
                             f"{last_good_epoch(run, epoch)}")


@dataclass(frozen=True)
class EpochTotals:
    """Sums over the epoch's steps: ``totals`` of the loss and of each loss part, over ``steps`` steps."""

    totals: dict[str, float]
    steps: int
    seconds: float

    def means(self) -> dict[str, float]:
        """The loss and each part, averaged over the steps ("loss" first)."""
        return {key: value / max(self.steps, 1) for key, value in self.totals.items()}


def _loader(run: Run, epoch: int):
    """The epoch's batches: DDP's sampler under torchrun, else a shuffle seeded by ``epoch_seed``."""
    config = run.config
    run.train_set.set_epoch(epoch)
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
        return batch_loader(run.train_set, config.optim.batch_size, sampler=run.sampler, drop_last=True,
                            num_workers=config.num_workers)
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    return batch_loader(run.train_set, config.optim.batch_size, shuffle=True, generator=generator, drop_last=True,
                        num_workers=config.num_workers)


def train_epoch(run: Run, epoch: int, progress: bool = True) -> EpochTotals:
    """Train one epoch (0-based) of a set-up run; returns its summed loss and parts."""
    config, device, batch_size = run.config, run.device, run.config.optim.batch_size
    torch.manual_seed(epoch_seed(config.seed, epoch))  # MAE masks, anything random in the step
    loader = _loader(run, epoch)
    run.module.train()
    totals, count, start = {"loss": 0.0}, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"{run.name} epoch {epoch + 1}/{config.optim.epochs}", disable=not progress or run.rank != 0,
               leave=False)
    for step, batch in enumerate(bar, start=1):
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.use_bf16):
            loss, parts = run.module(batch)
        value = float(loss.detach())
        stop_on_non_finite_loss(run, value, parts, epoch, step, batch)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(run.parameters, config.optim.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        count += 1
        totals["loss"] += value
        for key, part in parts.items():
            totals[key] = totals.get(key, 0.0) + float(part)
        rate = count * batch_size * run.world / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{value:.3f}", pairs_per_s=f"{rate:.0f}")
    bar.close()
    return EpochTotals(totals, count, time.perf_counter() - start)
