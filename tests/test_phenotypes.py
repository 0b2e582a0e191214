"""Volumes and phenotypes from masks, against brute-force counting."""

import numpy as np
import pytest

from ptacl_core.phenotypes import PHENOTYPES, label_volume_curves, phenotypes_from_masks


def _brute_force_volumes(labels, spacing):
    voxel_ml = np.prod(spacing) / 1000.0
    out = np.zeros((4, labels.shape[-1]))
    for t in range(labels.shape[-1]):
        for x in range(labels.shape[0]):
            for y in range(labels.shape[1]):
                for z in range(labels.shape[2]):
                    out[labels[x, y, z, t], t] += voxel_ml
    return out


@pytest.mark.parametrize("order", ["C", "F"])
def test_label_volumes_match_brute_force(order):
    labels = np.random.default_rng(0).integers(0, 4, size=(7, 6, 3, 5)).astype(np.uint8)
    labels = np.asarray(labels, order=order)
    np.testing.assert_allclose(label_volume_curves(labels, (1.5, 2.0, 8.0)), _brute_force_volumes(labels, (1.5, 2.0, 8.0)))


def test_phenotypes_of_a_constructed_ventricle():
    labels = np.zeros((20, 20, 2, 4), dtype=np.uint8)
    cavity_voxels = [100, 80, 40, 90]  # ES = frame 2
    for t, n in enumerate(cavity_voxels):
        flat = labels[..., 0, t].reshape(-1)
        flat[:n] = 1
        flat[n:n + 30] = 2
        labels[..., 0, t] = flat.reshape(20, 20)
        labels[:5, :5, 1, t] = 3 if t != 2 else 0
        labels[:3, :3, 1, t] = 3
    result = phenotypes_from_masks(labels, (1.0, 1.0, 10.0), heart_rate_bpm=60.0)
    assert set(result) == set(PHENOTYPES)
    assert result["LVEDV_mL"] == pytest.approx(1.0) and result["LVESV_mL"] == pytest.approx(0.4)
    assert result["LVEF_pct"] == pytest.approx(60.0) and result["LVCO_L_min"] == pytest.approx(0.6 * 60 / 1000)
    assert result["LVM_g"] == pytest.approx(0.3 * 1.05)
    assert result["RVEDV_mL"] == pytest.approx(0.25) and result["RVESV_mL"] == pytest.approx(0.09)


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match=r"\(X, Y, Z, T\)"):
        label_volume_curves(np.zeros((4, 4, 4), dtype=np.uint8), (1, 1, 1))
    with pytest.raises(ValueError, match="labels must lie"):
        label_volume_curves(np.full((2, 2, 1, 2), 7, dtype=np.uint8), (1, 1, 1))
    with pytest.raises(ValueError, match="no LV or RV cavity"):
        phenotypes_from_masks(np.zeros((4, 4, 1, 3), dtype=np.uint8), (1, 1, 1), 60.0)


# --- temporal phenotypes of the LV volume curve ------------------------------------------------------------

def _cycle(n_frames=50, rr_s=0.9, edv=150.0, ef=0.6, ejection_start=0.06, end_systole=0.36, early=0.7, atrial_start=None):
    from ptacl_core.synthetic.cine_phantom import volume_curve

    times = np.arange(n_frames) * rr_s / n_frames
    return volume_curve(times, rr_s, edv, ef, ejection_start, end_systole, early, atrial_start), 1000.0 * rr_s / n_frames


def test_temporal_phenotypes_of_a_known_curve():
    from ptacl_core.phenotypes import temporal_phenotypes

    volume, frame_ms = _cycle()
    result = temporal_phenotypes(volume, frame_ms)
    assert abs(result["LV_time_to_ES_ms"] - 360.0) <= frame_ms
    assert result["LV_time_to_ES_pct"] == pytest.approx(100.0 * result["LV_time_to_ES_ms"] / 900.0)
    assert result["LV_atrial_fraction_pct"] == pytest.approx(30.0, abs=3.0)  # 1 - early filling share
    assert result["LV_PER_mL_s"] == pytest.approx(90.0 * 1.85 / 0.30, rel=0.15)  # SV x 1.85 / LVET at ejection onset
    assert result["LV_PFR_E_mL_s"] > result["LV_PFR_A_mL_s"] > 0


def test_temporal_phenotypes_match_a_loop():
    """Each value recomputed with plain loops over frames (brute force) on a random periodic curve."""
    from ptacl_core.phenotypes import temporal_phenotypes

    volume, frame_ms = _cycle(n_frames=30, early=0.6)
    volume = volume + np.random.default_rng(0).normal(0.0, 0.2, len(volume))
    result = temporal_phenotypes(volume, frame_ms)
    n, dt = len(volume), frame_ms / 1000.0
    rate = [(volume[(t + 1) % n] - volume[(t - 1) % n]) / (2 * dt) for t in range(n)]
    es = min(range(n), key=lambda t: volume[t])
    assert result["LV_time_to_ES_ms"] == es * frame_ms
    assert result["LV_PER_mL_s"] == pytest.approx(max(-rate[t] for t in range(es + 1)))
    filling = rate[es:]
    smooth = [(rate[(t - 1) % n] + 2 * rate[t] + rate[(t + 1) % n]) / 4 for t in range(es, n)]
    peaks = [i for i in range(len(smooth)) if (i == 0 or smooth[i] > smooth[i - 1]) and (i == len(smooth) - 1 or smooth[i] >= smooth[i + 1])]
    big = [i for i in peaks if smooth[i] - max(min(smooth[:i + 1]), min(smooth[i:])) > 0.05 * max(smooth)]
    assert result["LV_PFR_E_mL_s"] == pytest.approx(max(filling[max(big[0] - 1, 0):big[0] + 2]))
    assert result["LV_PFR_A_mL_s"] == pytest.approx(max(filling[max(big[-1] - 1, 0):big[-1] + 2]))
    diastasis = es + min(range(big[0], big[-1] + 1), key=lambda i: smooth[i])
    assert result["LV_atrial_fraction_pct"] == pytest.approx(100 * (volume[0] - volume[diastasis]) / (volume[0] - volume[es]))


def test_fused_filling_waves_leave_the_a_wave_unknown():
    from ptacl_core.phenotypes import temporal_phenotypes

    volume, frame_ms = _cycle(n_frames=25, rr_s=0.5, end_systole=0.30, early=0.7, atrial_start=0.38)
    result = temporal_phenotypes(volume, frame_ms)
    assert np.isfinite(result["LV_PFR_E_mL_s"])
    if not np.isfinite(result["LV_PFR_A_mL_s"]):
        assert np.isnan(result["LV_atrial_fraction_pct"])


@pytest.mark.parametrize("volume, interval, message", [
    (np.ones(5), 20.0, "at least 8 frames"), (np.r_[np.nan, np.ones(9)], 20.0, "non-finite"),
    (np.linspace(1, 2, 10), 20.0, "trigger frame"), (np.r_[2.0, np.ones(9)], 0.0, "positive number of ms"),
    (np.r_[2.0, np.ones(9)], float("nan"), "positive number of ms")])
def test_temporal_phenotypes_refuse_bad_curves(volume, interval, message):
    from ptacl_core.phenotypes import temporal_phenotypes

    with pytest.raises(ValueError, match=message):
        temporal_phenotypes(volume, interval)


@pytest.mark.realdata
def test_temporal_phenotypes_on_real_end_diastolic_and_end_systolic_volumes(realdata):
    """The UK Biobank demo masks hold ED and ES only: a cycle through those real volumes (Weissler timing at
    60 bpm) gives back its end-systolic time and a stroke volume equal to the real EDV - ESV."""
    import nibabel as nib

    from ptacl_core.io.cmr import read_nifti_labels
    from ptacl_core.phenotypes import label_volume_curves, temporal_phenotypes
    from ptacl_core.synthetic.latent import weissler_ms

    ed = read_nifti_labels(realdata / "cmr/ukb_demo/1/seg_sa_ED.nii.gz")
    es = read_nifti_labels(realdata / "cmr/ukb_demo/1/seg_sa_ES.nii.gz")
    spacing = nib.load(realdata / "cmr/ukb_demo/1/seg_sa_ED.nii.gz").header.get_zooms()[:3]
    edv, esv = label_volume_curves(np.stack([ed, es], axis=-1), spacing)[1]
    end_systole = (weissler_ms("male", "QS2", 60.0) - 45.0) / 1000.0
    volume, frame_ms = _cycle(n_frames=50, rr_s=1.0, edv=edv, ef=(edv - esv) / edv, end_systole=end_systole)
    result = temporal_phenotypes(volume, frame_ms)
    assert abs(result["LV_time_to_ES_ms"] - 1000.0 * end_systole) <= frame_ms
    assert volume[0] - volume.min() == pytest.approx(edv - esv, rel=0.02)


def test_temporal_phenotypes_refuse_a_2d_curve_and_no_cavity():
    from ptacl_core.phenotypes import temporal_phenotypes

    with pytest.raises(ValueError, match="at least 8 frames"):
        temporal_phenotypes(np.ones((10, 2)), 20.0)
    with pytest.raises(ValueError, match="no cavity"):
        temporal_phenotypes(np.zeros(10), 20.0)
