"""Cardiac phase of ECG tokens and CMR frames, and phase-bin means, against brute-force loops."""

import pytest
import torch

from ptacl_core.model.encoders import MODEL_PRESETS, PTACLModel
from ptacl_core.model.phases import cmr_frame_assignment, ecg_token_phases, phase_bin_assignment, phase_bin_means

pytestmark = pytest.mark.usefixtures("double_precision")  # loop references are compared in float64


def test_phase_bin_assignment_matches_loop():
    phases = torch.rand(3, 20, generator=torch.Generator().manual_seed(2))
    valid = torch.rand(3, 20, generator=torch.Generator().manual_seed(3)) > 0.2
    fast = phase_bin_assignment(phases, valid, 7)
    slow = torch.zeros(3, 7, 20)
    for b in range(3):
        for k in range(7):
            members = [n for n in range(20) if valid[b, n] and int(phases[b, n] * 7) == k]
            for n in members:
                slow[b, k, n] = 1.0 / len(members)
    assert torch.allclose(fast, slow)


def test_ecg_token_phases_match_loop():
    rpeaks = torch.tensor([[100, 350, 610, -1], [50, 300, 540, 790]])
    times = torch.linspace(0.0, 4.0, 41)
    phases, valid = ecg_token_phases(times, rpeaks, fs=250.0)
    for b in range(2):
        peaks = [p / 250.0 for p in rpeaks[b].tolist() if p >= 0]
        for n, t in enumerate(times.tolist()):
            inside = [(a, c) for a, c in zip(peaks[:-1], peaks[1:], strict=True) if a <= t < c]
            assert bool(valid[b, n]) == bool(inside)
            if inside:
                a, c = inside[0]
                assert phases[b, n] == pytest.approx((t - a) / (c - a), abs=1e-9)


def test_cmr_assignment_spreads_tubelets_over_their_frames():
    weights = cmr_frame_assignment(num_frames=8, tubelet=2, num_bins=4, dtype=torch.float64)
    assert weights.shape == (4, 4)
    assert torch.allclose(weights, torch.eye(4))  # frames 2k, 2k+1 are bin k and token k
    weights = cmr_frame_assignment(num_frames=6, tubelet=1, num_bins=4, dtype=torch.float64)
    assert torch.allclose(weights.sum(-1), torch.ones(4))


def test_phase_bin_means_match_loop():
    generator = torch.Generator().manual_seed(4)
    ecg_tokens, cmr_tokens = torch.randn(2, 3, 40, 5, generator=generator), torch.randn(2, 10, 4, 5, generator=generator)
    rpeaks = torch.tensor([[10, 260, 510, 760, -1], [30, 230, 430, 630, 830]])
    times = (torch.arange(40) + 0.5) * 0.1  # 100 ms tokens at fs = 100 Hz
    segments, frames, mask = phase_bin_means(ecg_tokens, times, rpeaks, 100.0, cmr_tokens, tubelet=2, num_frames=20, num_bins=5)
    for b in range(2):
        peaks = [p / 100.0 for p in rpeaks[b].tolist() if p >= 0]
        for k in range(5):
            members = []
            for n, t in enumerate(times.tolist()):
                for a, c in zip(peaks[:-1], peaks[1:], strict=True):
                    if a <= t < c and int((t - a) / (c - a) * 5) == k:
                        members.append(n)
            assert bool(mask[b, k]) == bool(members)
            if members:
                expected = torch.stack([ecg_tokens[b, :, n].mean(0) for n in members]).mean(0)
                assert torch.allclose(segments[b, k], expected)
            frames_k = [f for f in range(20) if f * 5 // 20 == k]  # frame f of 20 has phase f / 20
            expected = torch.stack([cmr_tokens[b, f // 2].mean(0) for f in frames_k]).mean(0)
            assert torch.allclose(frames[b, k], expected)


def test_model_phase_embeddings_are_the_heads_of_the_bin_means():
    """The model's encode -> project chain equals doing each step by hand (what the losses and diagnostics see)."""
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    model = PTACLModel(MODEL_PRESETS["tiny"]).eval()
    batch = {"ecg": torch.randn(2, 12, 2500), "cmr": torch.rand(2, 24, 48, 48),
             "rpeaks": torch.tensor([[100, 320, 540, 760, 980, 1200, -1], [50, 300, 550, 800, 1050, 1300, 1550]])}
    with torch.no_grad():
        features = model.phase_embeddings(batch, 250.0, num_bins=10)
        ecg_tokens, ecg_pooled = model.ecg_encoder(batch["ecg"])
        cmr_tokens, cmr_pooled = model.cmr_encoder(batch["cmr"])
        times = model.ecg_encoder.token_times_s(2500, 250.0)
        segments, frames, mask = phase_bin_means(ecg_tokens, times, batch["rpeaks"], 250.0, cmr_tokens, 2, 24, 10)
        normalise = torch.nn.functional.normalize
        assert torch.allclose(features.z_ecg, normalise(model.ecg_head(ecg_pooled), dim=-1))
        assert torch.allclose(features.z_cmr, normalise(model.cmr_head(cmr_pooled), dim=-1))
        assert torch.allclose(features.u_ecg, normalise(model.ecg_head(segments), dim=-1))
        assert torch.allclose(features.u_cmr, normalise(model.cmr_head(frames), dim=-1))
        assert torch.equal(features.mask, mask)
        assert model.phase_embeddings(batch, 250.0).u_ecg is None  # global only: no phase chain
