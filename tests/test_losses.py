"""Losses against brute-force loops (values and gradients), invariances, masking, and DDP equivalence."""

import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from ptacl_core.model.losses import (
    GlobalContrastiveLoss,
    LocalTemporalLoss,
    PTACLLoss,
    global_contrastive_loss,
    local_temporal_loss,
    phase_clock_margin,
    sham_rpeaks,
)

pytestmark = pytest.mark.usefixtures("double_precision")  # loop references are compared in float64


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _global_loop(z_e, z_c, tau, alpha):
    batch = z_e.shape[0]
    total_e = total_c = 0.0
    for i in range(batch):
        logits_e = torch.stack([z_e[i] @ z_c[j] / tau for j in range(batch)])
        logits_c = torch.stack([z_c[i] @ z_e[j] / tau for j in range(batch)])
        total_e = total_e - torch.log_softmax(logits_e, 0)[i]
        total_c = total_c - torch.log_softmax(logits_c, 0)[i]
    return alpha * total_e / batch + (1 - alpha) * total_c / batch


def _local_loop(u_e, u_c, mask, tau, sigma):
    batch, bins, _ = u_e.shape
    total, count = 0.0, 0
    for i in range(batch):
        valid = [k for k in range(bins) if mask[i, k]]
        for k in valid:
            def targets(anchor, valid=valid):
                if sigma is None:
                    return {j: 1.0 if j == anchor else 0.0 for j in valid}
                weights = {}
                for j in valid:
                    distance = min(abs(anchor - j), bins - abs(anchor - j)) / bins
                    weights[j] = math.exp(-0.5 * (distance / sigma) ** 2)
                norm = sum(weights.values())
                return {j: w / norm for j, w in weights.items()}
            row = torch.stack([u_e[i, k] @ u_c[i, j] / tau for j in valid])
            column = torch.stack([u_c[i, k] @ u_e[i, j] / tau for j in valid])
            t = targets(k)
            loss_row = -sum(t[j] * torch.log_softmax(row, 0)[n] for n, j in enumerate(valid))
            loss_column = -sum(t[j] * torch.log_softmax(column, 0)[n] for n, j in enumerate(valid))
            total = total + 0.5 * (loss_row + loss_column)
            count += 1
    return total / count


def _cross_patient_loop(u_e, u_c, mask, tau, sigma):
    """ECG segment (i, k) against CMR frames (i, j) for every valid j and (i', k) for every other patient i' with
    bin k valid; targets over the own frames only (one-hot or circular Gaussian); CMR anchors likewise."""
    batch, bins, _ = u_e.shape
    total, count = 0.0, 0
    for i in range(batch):
        valid = [k for k in range(bins) if mask[i, k]]
        for k in valid:
            weights = {}
            for j in valid:
                distance = min(abs(k - j), bins - abs(k - j)) / bins
                weights[j] = (1.0 if j == k else 0.0) if sigma is None else math.exp(-0.5 * (distance / sigma) ** 2)
            norm = sum(weights.values())
            others = [n for n in range(batch) if n != i and mask[n, k]]
            losses = []
            for anchor, candidates in ((u_e, u_c), (u_c, u_e)):
                logits = [anchor[i, k] @ candidates[i, j] / tau for j in valid]
                logits += [anchor[i, k] @ candidates[n, k] / tau for n in others]
                log_p = torch.log_softmax(torch.stack(logits), 0)
                losses.append(-sum(weights[j] / norm * log_p[m] for m, j in enumerate(valid)))
            total = total + 0.5 * (losses[0] + losses[1])
            count += 1
    return total / count


def _margin_loop(u_e, u_c, mask, tau):
    """Per patient: the one-hot K x K loss against its own CMR and against patient i - 1's (cyclically), on the bins
    valid for both."""
    batch = u_e.shape[0]
    own, other = [], []
    for i in range(batch):
        j = (i - 1) % batch
        joint = mask[i:i + 1] & mask[j:j + 1]  # both scored on the bins valid for both patients
        nan = torch.tensor(float("nan"))
        own.append(_local_loop(u_e[i:i + 1], u_c[i:i + 1], joint, tau, None) if joint.any() else nan)
        other.append(_local_loop(u_e[i:i + 1], u_c[j:j + 1], joint, tau, None) if joint.any() else nan)
    return torch.stack(own), torch.stack(other)


@pytest.mark.parametrize("alpha", [0.5, 0.75])
def test_global_loss_matches_loop_values_and_gradients(alpha):
    z_e = _unit(6, 8, seed=1).requires_grad_()
    z_c = _unit(6, 8, seed=2).requires_grad_()
    fast = global_contrastive_loss(z_e, z_c, 0.1, alpha)
    slow = _global_loop(z_e, z_c, 0.1, alpha)
    assert torch.allclose(fast, slow)
    grads_fast = torch.autograd.grad(fast, (z_e, z_c))
    grads_slow = torch.autograd.grad(slow, (z_e, z_c))
    for a, b in zip(grads_fast, grads_slow, strict=True):
        assert torch.allclose(a, b)


@pytest.mark.parametrize("sigma", [None, 0.08])
def test_local_loss_matches_loop_values_and_gradients(sigma):
    u_e = _unit(3, 6, 5, seed=3).requires_grad_()
    u_c = _unit(3, 6, 5, seed=4).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    fast = local_temporal_loss(u_e, u_c, mask, 0.2, sigma)
    slow = _local_loop(u_e, u_c, mask, 0.2, sigma)
    assert torch.allclose(fast, slow)
    for a, b in zip(torch.autograd.grad(fast, (u_e, u_c)), torch.autograd.grad(slow, (u_e, u_c)), strict=True):
        assert torch.allclose(a, b)


@pytest.mark.parametrize("sigma", [None, 0.08])
def test_cross_patient_local_loss_matches_loop_values_and_gradients(sigma):
    u_e = _unit(4, 6, 5, seed=13).requires_grad_()
    u_c = _unit(4, 6, 5, seed=14).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 0], [1, 1, 0, 1, 1, 0]], dtype=torch.bool)
    fast = local_temporal_loss(u_e, u_c, mask, 0.2, sigma, variant="cross_patient")
    slow = _cross_patient_loop(u_e, u_c, mask, 0.2, sigma)
    assert torch.allclose(fast, slow)
    for a, b in zip(torch.autograd.grad(fast, (u_e, u_c)), torch.autograd.grad(slow, (u_e, u_c)), strict=True):
        assert torch.allclose(a, b)
    # the other patients' phases are extra negatives: never a lower loss than the per-patient variant
    assert fast > local_temporal_loss(u_e, u_c, mask, 0.2, sigma)


def test_cross_patient_defeats_a_phase_clock_that_per_patient_rewards():
    """Features that encode only the phase (the same for every patient) solve the per-patient loss but not the
    cross-patient one; features that also encode the patient solve both."""
    bins, batch = 6, 5
    clock = torch.eye(bins, 2 * bins)[None].expand(batch, bins, 2 * bins)
    mask = torch.ones(batch, bins, dtype=torch.bool)
    assert local_temporal_loss(clock, clock, mask, 0.01) < 1e-6
    assert local_temporal_loss(clock, clock, mask, 0.01, variant="cross_patient") > math.log(batch) - 0.1
    patient = torch.eye(batch, 2 * bins)[:, None, :].roll(bins, dims=-1)  # patient i: unit vector bins + i
    both = F.normalize(clock + patient, dim=-1)
    assert local_temporal_loss(both, both, mask, 0.01, variant="cross_patient") < 1e-3


def test_phase_clock_margin_matches_loop_and_reads_zero_for_a_phase_clock():
    u_e, u_c = _unit(5, 6, 4, seed=15), _unit(5, 6, 4, seed=16)
    mask = torch.rand(5, 6, generator=torch.Generator().manual_seed(3)) > 0.3
    own, other = phase_clock_margin(u_e, u_c, mask, 0.2)
    own_loop, other_loop = _margin_loop(u_e, u_c, mask, 0.2)
    assert torch.allclose(own, own_loop, equal_nan=True) and torch.allclose(other, other_loop, equal_nan=True)
    clock = torch.eye(6, 12)[None].expand(5, 6, 12)
    full = torch.ones(5, 6, dtype=torch.bool)
    own, other = phase_clock_margin(clock, clock, full, 0.1)
    assert torch.allclose(other - own, torch.zeros(5))  # a phase clock carries no patient information
    patient = _unit(5, 6, 12, seed=17)  # each patient's phases in directions of its own
    own, other = phase_clock_margin(patient, patient, full, 0.1)
    assert bool(((other - own) > 0).all())


def test_sham_rpeaks_give_every_patient_another_patients_beats():
    rpeaks = torch.tensor([[10, 200, -1], [20, 220, 420], [30, 240, -1]])
    sham = sham_rpeaks(rpeaks)
    assert torch.equal(sham, rpeaks[[2, 0, 1]])
    assert all(not torch.equal(sham[i], rpeaks[i]) for i in range(3))


def test_unknown_local_variant_is_a_clear_error():
    with pytest.raises(ValueError, match="local variant must be one of"):
        LocalTemporalLoss(variant="diagonal")
    with pytest.raises(ValueError, match="local variant must be one of"):
        local_temporal_loss(_unit(2, 3, 4), _unit(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), variant="diag")


def test_losses_are_invariant_to_batch_permutation():
    z_e, z_c = _unit(8, 4, seed=5), _unit(8, 4, seed=6)
    u_e, u_c = _unit(8, 5, 4, seed=7), _unit(8, 5, 4, seed=8)
    mask = torch.rand(8, 5, generator=torch.Generator().manual_seed(0)) > 0.3
    order = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(global_contrastive_loss(z_e, z_c), global_contrastive_loss(z_e[order], z_c[order]))
    assert torch.allclose(local_temporal_loss(u_e, u_c, mask), local_temporal_loss(u_e[order], u_c[order], mask[order]))
    cross = local_temporal_loss(u_e, u_c, mask, variant="cross_patient")
    assert torch.allclose(cross, local_temporal_loss(u_e[order], u_c[order], mask[order], variant="cross_patient"))


def test_aligned_phases_give_near_zero_loss_and_shuffled_a_high_one():
    u = torch.eye(10).expand(4, 10, 10)  # each bin its own orthogonal direction
    mask = torch.ones(4, 10, dtype=torch.bool)
    aligned = local_temporal_loss(u, u, mask, temperature=0.01)
    shuffled = local_temporal_loss(u, u[:, torch.roll(torch.arange(10), 3)], mask, temperature=0.01)
    assert aligned < 1e-6 and shuffled > 50.0
    z = torch.eye(8)
    assert global_contrastive_loss(z, z, temperature=0.01) < 1e-6


def test_masked_bins_do_not_contribute():
    u_e, u_c = _unit(2, 6, 4, seed=9), _unit(2, 6, 4, seed=10)
    mask = torch.tensor([[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    before = local_temporal_loss(u_e, u_c, mask)
    u_e2, u_c2 = u_e.clone(), u_c.clone()
    u_e2[0, 3:5], u_c2[0, 3:5] = _unit(2, 4, seed=11), _unit(2, 4, seed=12)
    assert torch.allclose(before, local_temporal_loss(u_e2, u_c2, mask))


def test_ptacl_loss_combines_terms():
    z_e, z_c = _unit(4, 8, seed=0), _unit(4, 8, seed=1)
    u_e, u_c = _unit(4, 5, 8, seed=2), _unit(4, 5, 8, seed=3)
    mask = torch.ones(4, 5, dtype=torch.bool)
    total, parts = PTACLLoss(lam=0.5)(z_e, z_c, u_e, u_c, mask)
    assert torch.allclose(parts["global"], global_contrastive_loss(z_e, z_c, 0.1, 0.5))
    assert torch.allclose(parts["local"], local_temporal_loss(u_e, u_c, mask, 0.1))
    assert torch.allclose(total, parts["global"] + 0.5 * parts["local"])
    global_only, parts_g = PTACLLoss(lam=0.0)(z_e, z_c)  # no phase features needed
    assert torch.allclose(global_only, parts["global"]) and parts_g["local"] == 0
    local_only, _ = PTACLLoss(global_weight=0.0)(z_e, z_c, u_e, u_c, mask)
    assert torch.allclose(local_only, parts["local"])


def test_local_term_without_phase_features_is_a_clear_error():
    with pytest.raises(ValueError, match="phase-bin features"):
        PTACLLoss(lam=1.0)(_unit(4, 8), _unit(4, 8, seed=1))


def test_learnable_temperature_is_a_parameter_and_clamped():
    loss = GlobalContrastiveLoss(temperature=0.001, learnable_temperature=True)
    assert any(p is loss.log_scale for p in loss.parameters())
    assert float(loss.temperature.detach()) == pytest.approx(0.01)  # CLIP's clamp: tau >= 0.01
    fixed = GlobalContrastiveLoss(temperature=0.1)
    assert not list(fixed.parameters()) and float(fixed.temperature) == pytest.approx(0.1)


# --- DDP: two gloo processes on CPU give the loss and gradients of one process with the whole batch ----

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world, port, inputs, weights, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_default_dtype(torch.float64)
    criterion = GlobalContrastiveLoss(0.1, 0.75, gather=True)  # built before the process group exists
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    layer = torch.nn.Linear(inputs[0].shape[1], 4, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(weights)
    model = torch.nn.parallel.DistributedDataParallel(layer)
    share = inputs[0].shape[0] // world
    x_e = inputs[0][rank * share:(rank + 1) * share]
    x_c = inputs[1][rank * share:(rank + 1) * share]
    z_e, z_c = F.normalize(model(x_e), dim=-1), F.normalize(model(x_c), dim=-1)
    loss = criterion(z_e, z_c)  # training mode: the whole batch of both processes
    loss.backward()
    own = float(global_contrastive_loss(z_e.detach(), z_c.detach(), 0.1, 0.75))  # this process's half only
    evaluated = float(criterion.eval()(z_e.detach(), z_c.detach()))  # eval mode: no gather
    not_gathered = float(GlobalContrastiveLoss(0.1, 0.75, gather=False)(z_e.detach(), z_c.detach()))
    # numpy: no shared-memory handle to outlive us
    queue.put((rank, float(loss.detach()), layer.weight.grad.numpy().copy(), (own, evaluated, not_gathered)))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_equals_one_process():
    import torch.multiprocessing as mp

    x_e = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    x_c = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    layer = torch.nn.Linear(5, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weights)
    reference = global_contrastive_loss(F.normalize(layer(x_e), dim=-1), F.normalize(layer(x_c), dim=-1), 0.1, 0.75)
    reference.backward()

    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_ddp_worker, args=(rank, 2, port, (x_e, x_c), weights, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    for _, loss, grad, (own, evaluated, not_gathered) in results:
        assert loss == pytest.approx(float(reference.detach()), rel=1e-9)
        assert torch.allclose(torch.from_numpy(grad), layer.weight.grad, atol=1e-10)
        assert evaluated == pytest.approx(own, rel=1e-12) and not_gathered == pytest.approx(own, rel=1e-12)
        assert own != pytest.approx(loss, rel=1e-6)  # the halves alone give another loss: the gather mattered


def _ddp_local_worker(rank, world, port, inputs, weights, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_default_dtype(torch.float64)
    criterion = LocalTemporalLoss(0.1, 0.1, variant="cross_patient", gather=True)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    layer = torch.nn.Linear(inputs[0].shape[-1], 4, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(weights)
    model = torch.nn.parallel.DistributedDataParallel(layer)
    share = inputs[0].shape[0] // world
    x_e, x_c, mask = (x[rank * share:(rank + 1) * share] for x in inputs)
    loss = criterion(F.normalize(model(x_e), dim=-1), F.normalize(model(x_c), dim=-1), mask)
    loss.backward()
    queue.put((rank, float(loss.detach()), layer.weight.grad.numpy().copy()))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_cross_patient_local_loss_equals_one_process():
    """The cross-patient variant's negatives are the other patients: under DDP it gathers them from every
    process, so two processes of 4 patients give the loss and gradients of one process holding all 8."""
    import torch.multiprocessing as mp

    x_e = torch.randn(8, 6, 5, generator=torch.Generator().manual_seed(0))
    x_c = torch.randn(8, 6, 5, generator=torch.Generator().manual_seed(1))
    mask = torch.rand(8, 6, generator=torch.Generator().manual_seed(3)) > 0.25
    weights = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    layer = torch.nn.Linear(5, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weights)
    reference = local_temporal_loss(F.normalize(layer(x_e), dim=-1), F.normalize(layer(x_c), dim=-1), mask, 0.1, 0.1,
                                    variant="cross_patient")
    reference.backward()
    with torch.no_grad():
        halves = [float(local_temporal_loss(F.normalize(layer(x_e[h]), dim=-1), F.normalize(layer(x_c[h]), dim=-1),
                                            mask[h],
                                            0.1, 0.1, variant="cross_patient")) for h in (slice(0, 4), slice(4, 8))]

    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_ddp_local_worker, args=(rank, 2, port, (x_e, x_c, mask), weights, queue))
                 for rank in range(2)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    for _, loss, grad in results:
        assert loss == pytest.approx(float(reference.detach()), rel=1e-9)
        assert torch.allclose(torch.from_numpy(grad), layer.weight.grad, atol=1e-10)
        assert all(half != pytest.approx(loss, rel=1e-6) for half in halves)  # the gather mattered
