"""The validation of each epoch (METHOD.md §4): the mean loss on the validation split, deterministic, and for the
contrastive methods the phase-clock margin (``losses.phase_clock_margin``). A validation batch whose loss is NaN
or infinite stops the run (``epoch.NonFiniteLossError``, naming the batch's subjects); a split without a batch of
two patients has no loss (NaN), not a loss of 0."""

from __future__ import annotations

import math

import torch

from ptacl_core.preprocessing.dataset import CacheDataset, batch_loader
from ptacl_core.training.epoch import NonFiniteLossError, non_finite_inputs
from ptacl_core.training.objective import Objective


@torch.no_grad()
def validate(objective: Objective, dataset: CacheDataset, batch_size: int, device: torch.device, use_bf16: bool,
             seed: int) -> tuple[float, dict]:
    """(mean loss, margin) on a split, deterministic (fixed seed for MAE masks; the global RNG is restored after).
    margin, for the contrastive methods: ``val_local_own`` / ``val_local_other``, the per-patient local loss of each
    patient against its own and another patient's CMR, and ``val_margin`` their difference, means over patients
    (the other patient: the previous one in the split's order); {} for the others. The mean loss is NaN when no
    batch has two patients; a batch whose loss is not finite raises ``NonFiniteLossError``."""
    objective.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    total, count = 0.0, 0
    own_losses, other_losses = [], []
    for batch in batch_loader(dataset, batch_size):
        if len(batch["ecg"]) < 2:
            continue
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, features = objective.validation_loss(batch)
        if not math.isfinite(float(loss)):
            torch.random.set_rng_state(state)
            inputs = non_finite_inputs(batch) or "every input finite"
            raise NonFiniteLossError(f"the validation loss is {float(loss)} on the batch of subjects "
                                     f"{batch['subject_id'][:5]!r}{' ...' if len(batch['subject_id']) > 5 else ''} ({inputs})")
        if features is not None:  # the margin in float32, outside autocast
            own, other = objective.phase_clock_margin(features)
            own_losses.append(own.cpu())
            other_losses.append(other.cpu())
        total += float(loss) * len(batch["ecg"])
        count += len(batch["ecg"])
    torch.random.set_rng_state(state)
    return total / count if count else float("nan"), _margin(own_losses, other_losses)


def _margin(own_losses: list[torch.Tensor], other_losses: list[torch.Tensor]) -> dict:
    """Means over the patients where both losses are finite; {} without contrastive batches."""
    if not own_losses:
        return {}
    own, other = torch.cat(own_losses), torch.cat(other_losses)
    both = torch.isfinite(own) & torch.isfinite(other)
    return {"val_local_own": float(own[both].mean()), "val_local_other": float(other[both].mean()),
            "val_margin": float((other - own)[both].mean())}
