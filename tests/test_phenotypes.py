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
