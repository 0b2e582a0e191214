"""One training epoch (METHOD.md §4-5): the epoch's seeded shuffling and masking, then forward, backward, clip and
step per batch, under bf16 autocast on CUDA.

Shuffling, augmentation and masking are seeded per (seed, epoch) (``epoch_seed``), so on CPU a resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ptacl_core.preprocessing.dataset import batch_loader
from ptacl_core.training.setup import Run

EPOCH_SEED_STRIDE = 1000  # epoch e of seed s draws from seed s * 1000 + e: distinct for < 1000 epochs


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of one epoch of a run (shuffling order, MAE masks): resumable, distinct per (seed, epoch)."""
    return seed * EPOCH_SEED_STRIDE + epoch


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
    for batch in bar:
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.use_bf16):
            loss, parts = run.module(batch)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(run.parameters, config.optim.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        count += 1
        totals["loss"] += float(loss.detach())
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        rate = count * batch_size * run.world / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", pairs_per_s=f"{rate:.0f}")
    bar.close()
    return EpochTotals(totals, count, time.perf_counter() - start)
