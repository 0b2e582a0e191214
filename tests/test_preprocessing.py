"""Preprocessing and the training cache: filters, flags, views, resume, shards, refusals, failures."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from scipy import signal as sps

import ptacl_core.preprocessing.subject as subject_module
from ptacl_core.io.cmr import read_cmr
from ptacl_core.io.ecg import read_ecg
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.preprocessing.build import Shard, build_cache
from ptacl_core.preprocessing.cache import Cache, CacheMismatchError
from ptacl_core.preprocessing.cine_cropping import preprocess_cmr, resample_cycle
from ptacl_core.preprocessing.config import CmrConfig, EcgConfig, PreprocessConfig
from ptacl_core.preprocessing.dataset import (
    MAX_BEATS,
    Augmentation,
    CacheDataset,
    augment_batch,
    cmr_parameters,
    transform_cmr,
)
from ptacl_core.preprocessing.ecg_filtering import EcgQualityError, clipped_leads, filter_ecg, preprocess_ecg
from ptacl_core.preprocessing.merge import merge_caches

FAST = PreprocessConfig(ecg=EcgConfig(fs=250), cmr=CmrConfig(size=32, n_frames=20))


# --- ECG ---------------------------------------------------------------------------------------------

def _sine_ecg(fs=500, seconds=10.0, hz=1.2):
    t = np.arange(int(fs * seconds)) / fs
    beats = sps.sawtooth(2 * np.pi * hz * t, width=0.02) ** 30  # narrow spikes at 72 bpm
    return np.tile(beats, (12, 1)) * np.linspace(0.5, 1.5, 12)[:, None], fs


def test_filters_remove_baseline_wander_and_mains_and_keep_the_qrs_band():
    fs = 500
    t = np.arange(5000) / fs
    wander, mains, qrs_band = np.sin(2 * np.pi * 0.1 * t), 0.2 * np.sin(2 * np.pi * 50 * t), 0.3 * np.sin(2 * np.pi * 15 * t)
    filtered = filter_ecg(np.tile(wander + mains + qrs_band, (12, 1)), fs, EcgConfig())[0, 500:-500]
    assert np.std(filtered - qrs_band[500:-500]) < 0.03
    sixty = filter_ecg(np.tile(0.2 * np.sin(2 * np.pi * 60 * t), (12, 1)), fs, EcgConfig(notch_hz=60.0))[0, 500:-500]
    assert np.std(sixty) < 0.02


def test_resampling_and_rpeaks_of_a_real_record_at_another_rate(realdata):
    ecg = read_ecg(realdata / "ecg/wfdb/ptb/s0010_re.hea")  # 1000 Hz, 38 s, 15 channels
    out = preprocess_ecg(ecg.signal, ecg.fs, EcgConfig(fs=250))
    assert out.signal.shape == (12, 2500) and out.signal.dtype == np.float32
    rate = 60.0 * 250 / np.mean(np.diff(out.rpeaks))
    full_rate_peaks = preprocess_ecg(ecg.signal, ecg.fs, EcgConfig(fs=500)).rpeaks
    assert rate == pytest.approx(60.0 * 500 / np.mean(np.diff(full_rate_peaks)), abs=1.0)
    assert 40 < rate < 120


def test_flat_lead_is_rejected_with_its_name():
    signal, fs = _sine_ecg()
    signal[LEAD_NAMES.index("V3")] = 0.0
    with pytest.raises(EcgQualityError, match="flat_lead:V3"):
        preprocess_ecg(signal, fs, EcgConfig())
    kept = preprocess_ecg(signal, fs, EcgConfig(reject_flags=()))
    assert "flat_lead:V3" in kept.flags


def test_microvolts_labelled_as_millivolts_are_rejected():
    signal, fs = _sine_ecg()
    with pytest.raises(EcgQualityError, match="implausible_amplitude.*µV data labelled as mV"):
        preprocess_ecg(signal * 1000.0, fs, EcgConfig())


def test_high_voltage_is_flagged_but_kept():
    """Over 5 mV is a possible gain error but also severe LV hypertrophy: flagged, not excluded."""
    signal, fs = _sine_ecg()
    out = preprocess_ecg(signal * 6.0, fs, EcgConfig())
    assert any(flag.startswith("over_5mv:") for flag in out.flags)


def test_no_rhythm_is_refused():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, size=(12, 5000))
    with pytest.raises(EcgQualityError, match="fewer than two R peaks"):
        preprocess_ecg(noise, 500, EcgConfig(reject_flags=()))


def test_clipped_samples_are_flagged():
    signal, fs = _sine_ecg()
    clipped = signal.copy()
    lead_ii = clipped[LEAD_NAMES.index("II")]
    clipped[LEAD_NAMES.index("II")] = np.minimum(lead_ii, 0.3 * lead_ii.max())  # the amplifier's rail
    assert clipped_leads(clipped) == ["II"] and clipped_leads(signal) == []
    assert "clipped:II" in preprocess_ecg(clipped, fs, EcgConfig()).flags


def test_short_record_is_refused():
    signal, fs = _sine_ecg(seconds=6.0)
    with pytest.raises(EcgQualityError, match="6.00 s long"):
        preprocess_ecg(signal, fs, EcgConfig())


@pytest.mark.parametrize("how", ["lead_zscore", "record_zscore"])
def test_normalisation_options(how):
    signal, fs = _sine_ecg()
    out = preprocess_ecg(signal, fs, EcgConfig(normalisation=how)).signal
    if how == "lead_zscore":
        np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-3)
    else:
        assert out.std() == pytest.approx(1.0, abs=1e-3)


def test_config_validation():
    with pytest.raises(ValueError, match="notch_hz"):
        EcgConfig(notch_hz=55.0)
    with pytest.raises(ValueError, match="normalisation"):
        EcgConfig(normalisation="minmax")
    with pytest.raises(ValueError, match="view"):
        CmrConfig(view="axial")
    with pytest.raises(ValueError, match="unknown preset"):
        PreprocessConfig.preset("huge")
    with pytest.raises(ValueError, match="highpass_hz"):
        EcgConfig(highpass_hz=200.0)
    with pytest.raises(ValueError, match="reject_flags"):
        EcgConfig(reject_flags=("bad_vibes",))
    with pytest.raises(ValueError, match="size"):
        CmrConfig(size=8)
    assert PreprocessConfig.from_dict(PreprocessConfig.preset("tiny").to_dict()) == PreprocessConfig.preset("tiny")


# --- cine --------------------------------------------------------------------------------------------

def _disk_cine(n_frames=30, size=60, es=12):
    """A bright disk whose radius shrinks to a minimum at frame ``es``; labels alongside."""
    x, y = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    radius = 10 - 5 * np.sin(np.pi * np.minimum(np.arange(n_frames), 2 * es) / (2 * es))
    distance = np.hypot(x - 35, y - 25)[:, :, None, None]
    cavity = distance < radius[None, None, None, :]
    image = np.where(cavity, 200.0, 40.0) + np.zeros((size, size, 3, n_frames))
    labels = np.where(cavity, 1, 0).astype(np.uint8) + np.zeros((size, size, 3, n_frames), dtype=np.uint8)
    return image, labels


def test_cine_crop_is_centred_on_the_lv_and_es_found():
    image, labels = _disk_cine()
    out = preprocess_cmr(image, (1.0, 1.0, 8.0), CmrConfig(size=32, crop_mm=40.0, n_frames=30), labels)
    assert out.cine.shape == (1, 30, 32, 32) and out.es_frame == 12 and out.ed_frame == 0
    assert out.centre_mm == pytest.approx((35.0, 25.0))
    bright = out.cine[0, 0] > 0.5
    rows, columns = np.nonzero(bright)
    assert abs(rows.mean() - 15.5) < 1.0 and abs(columns.mean() - 15.5) < 1.0  # the disk sits in the middle
    assert out.cine.min() >= 0.0 and out.cine.max() <= 1.0
    unlabelled = preprocess_cmr(image, (1.0, 1.0, 8.0), CmrConfig(size=32, crop_mm=40.0, n_frames=30), None)
    assert abs(unlabelled.es_frame - 12) <= 1
    assert np.hypot(*np.subtract(unlabelled.centre_mm, (35.0, 25.0))) < 6.0


def test_time_resampling_is_cyclic_and_matches_a_loop():
    rng = np.random.default_rng(0)
    cine = rng.random((1, 20, 4, 4))
    out = resample_cycle(cine, 50)
    for k in range(50):
        position = k * 20 / 50
        lower, weight = int(np.floor(position)), position - np.floor(position)
        expected = (1 - weight) * cine[:, lower % 20] + weight * cine[:, (lower + 1) % 20]
        np.testing.assert_allclose(out[:, k], expected)


def test_views():
    image, labels = _disk_cine()
    three = preprocess_cmr(image, (1, 1, 8), CmrConfig(view="sa_three", size=32, n_frames=10), labels)
    assert three.cine.shape == (3, 10, 32, 32)
    with pytest.raises(ValueError, match="single long-axis slice"):
        preprocess_cmr(image, (1, 1, 8), CmrConfig(view="la_4ch", size=32), None)
    with pytest.raises(ValueError, match="sa_three needs 3"):
        preprocess_cmr(image[:, :, :2], (1, 1, 8), CmrConfig(view="sa_three", size=32), None)
    with pytest.raises(ValueError, match="do not match the image"):
        preprocess_cmr(image, (1, 1, 8), CmrConfig(size=32), labels[:, :, :, :5])
    with pytest.raises(ValueError, match=r"\(X, Y, Z, T\)"):
        preprocess_cmr(image[..., 0], (1, 1, 8), CmrConfig(size=32), None)


def test_es_ignores_unlabelled_frames():
    """Masks drawn on ED and ES only (the rest empty) still give the contoured ES."""
    image, labels = _disk_cine()
    sparse = np.zeros_like(labels)
    sparse[..., 0], sparse[..., 12] = labels[..., 0], labels[..., 12]
    out = preprocess_cmr(image, (1, 1, 8), CmrConfig(size=32, crop_mm=40.0, n_frames=30), sparse)
    assert out.es_frame == 12


def test_sunnybrook_dicom_slice_preprocesses_with_es_near_the_contoured_frame(realdata):
    cine = read_cmr(realdata / "cmr/sunnybrook/dicom_slice05")
    out = preprocess_cmr(cine.image, cine.spacing_mm, CmrConfig(n_frames=20), None)
    assert out.cine.shape == (1, 20, 64, 64)
    # The contours of this patient put ES at frame 7 of 20 (scd_subset_phenotypes_from_contours.csv).
    assert abs(out.es_frame - 7) <= 2


# --- cache ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_cohort(cohort, tmp_path_factory):
    """12 subjects of the session cohort, with their own manifest (a cache test's cohort)."""
    folder = tmp_path_factory.mktemp("small_cohort")
    manifest = pd.read_csv(cohort / "manifest.csv").head(12)
    for name in ("ecg", "cmr"):  # the recordings stay where they are: links inside the cohort folder
        (folder / name).symlink_to(cohort / name, target_is_directory=True)
    manifest.to_csv(folder / "manifest.csv", index=False)
    shutil.copy(cohort / "phenotypes.csv", folder / "phenotypes.csv")
    phenotypes = pd.read_csv(cohort / "phenotypes.csv")
    phenotypes[phenotypes.subject_id.isin(manifest.subject_id)].to_csv(folder / "phenotypes.csv", index=False)
    return folder


def _arrays(folder):
    return np.load(folder / "ecg.npy"), np.load(folder / "cmr.npy"), pd.read_csv(folder / "index.csv")


def test_cache_contents_and_dataset(small_cohort, tmp_path):
    summary = build_cache(small_cohort, tmp_path / "cache", FAST, progress=False)
    assert summary["complete"] and summary["n_cached"] == 12 and summary["n_failed"] == 0
    cache = Cache.open(tmp_path / "cache")
    assert cache.ecg.shape == (12, 12, 2500) and cache.cmr.shape == (12, 20, 32, 32)
    assert cache.ecg.dtype == np.float16
    first = cache.index.iloc[0]
    # cached R peaks (250 Hz) against the generator's true beats (.atr, 500 Hz): within 20 ms
    ecg_path = pd.read_csv(small_cohort / "manifest.csv").set_index("subject_id").loc[first.subject_id, "ecg"]
    truth = wfdb.rdann(str(small_cohort / ecg_path.removesuffix(".hea")), "atr").sample / 2.0
    cached = cache.rpeaks(0)
    assert len(cached) >= len(truth) - 1
    assert np.all(np.abs(cached[:, None] - truth[None, :]).min(axis=1) <= 5)
    assert first.es_frame > 0
    dataset = CacheDataset(cache, split=None)
    item = dataset[0]
    assert item["ecg"].shape == (12, 2500) and item["cmr"].shape == (20, 32, 32)
    assert item["rpeaks"].shape == (MAX_BEATS,) and int((item["rpeaks"] >= 0).sum()) == len(cache.rpeaks(0))
    assert torch.isclose(item["phenotypes"][0], torch.tensor(float(first.LVEDV_mL)), rtol=1e-4)
    assert item["subject_id"] == first.subject_id


def test_rerun_is_a_no_op_and_resume_equals_uninterrupted(small_cohort, tmp_path):
    build_cache(small_cohort, tmp_path / "whole", FAST, progress=False)
    partial = build_cache(small_cohort, tmp_path / "resumed", FAST, progress=False, stop_after=5)
    assert not partial["complete"] and partial["n_cached"] == 5
    with pytest.raises(CacheMismatchError, match="did not finish"):
        Cache.open(tmp_path / "resumed")
    # a kill mid-write leaves a truncated last line in the resume log: that subject is redone
    with open(tmp_path / "resumed/rows.jsonl", "a") as handle:
        handle.write('{"subject_id": "SYN0000')
    resumed = build_cache(small_cohort, tmp_path / "resumed", FAST, progress=False, workers=2)
    assert resumed["complete"] and resumed["n_processed_now"] == 7
    for a, b in zip(_arrays(tmp_path / "whole"), _arrays(tmp_path / "resumed"), strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            pd.testing.assert_frame_equal(a, b)
    again = build_cache(small_cohort, tmp_path / "whole", FAST, progress=False)
    assert again["n_processed_now"] == 0 and again["complete"]


def test_cache_with_another_config_is_refused(small_cohort, tmp_path):
    build_cache(small_cohort, tmp_path / "c", FAST, progress=False, stop_after=1)
    other = FAST.with_overrides({"ecg.notch_hz": 60.0})
    with pytest.raises(CacheMismatchError, match="another manifest, preprocessing config"):
        build_cache(small_cohort, tmp_path / "c", other, progress=False)
    description = json.loads((tmp_path / "c/cache.json").read_text())
    assert description["config"]["ecg"]["notch_hz"] == 50.0
    build_cache(small_cohort, tmp_path / "c", FAST, progress=False)
    with pytest.raises(CacheMismatchError, match="expected"):
        Cache.open(tmp_path / "c", expected_config=other)


def test_cache_where_every_subject_failed_still_opens(small_cohort, tmp_path):
    manifest = pd.read_csv(small_cohort / "manifest.csv").head(2)
    manifest["ecg"] = "missing.hea"
    (tmp_path / "cohort").mkdir()
    manifest.to_csv(tmp_path / "cohort/manifest.csv", index=False)
    summary = build_cache(tmp_path / "cohort", tmp_path / "cache", FAST, progress=False)
    assert summary["n_failed"] == 2 and summary["complete"]
    assert len(Cache.open(tmp_path / "cache").index) == 0


def test_unexpected_error_in_one_subject_is_recorded(small_cohort, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = subject_module.preprocess_cmr

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ZeroDivisionError("a bug in one subject's path")
        return original(*args, **kwargs)

    monkeypatch.setattr(subject_module, "preprocess_cmr", flaky)  # the name the subject's preprocessing calls
    summary = build_cache(small_cohort, tmp_path / "cache", FAST, progress=False)
    failures = pd.read_csv(tmp_path / "cache/failures.csv")
    assert summary["complete"] and summary["n_failed"] == 1
    assert failures.stage.tolist() == ["unexpected"] and "ZeroDivisionError" in failures.reason[0]


def test_shards_merge_into_the_same_cache(small_cohort, tmp_path):
    build_cache(small_cohort, tmp_path / "whole", FAST, progress=False)
    for index in range(3):
        build_cache(small_cohort, tmp_path / f"shard{index}", FAST, progress=False, shard=Shard(index, 3))
    merge_caches([tmp_path / f"shard{i}" for i in (2, 0, 1)], tmp_path / "merged")
    for a, b in zip(_arrays(tmp_path / "whole"), _arrays(tmp_path / "merged"), strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            pd.testing.assert_frame_equal(a, b, check_dtype=False)
    with pytest.raises(CacheMismatchError, match="do not cover"):
        merge_caches([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "bad")
    with pytest.raises(ValueError, match="I/N"):
        Shard.parse("3")
    with pytest.raises(ValueError, match="0 <= I < N"):
        Shard.parse("3/3")
    with pytest.raises(CacheMismatchError, match="another manifest"):  # a shard folder reused for another shard
        build_cache(small_cohort, tmp_path / "shard0", FAST, progress=False, shard=Shard(1, 3))


def test_merge_refuses_mixed_fingerprints_and_unfinished_shards(small_cohort, tmp_path):
    build_cache(small_cohort, tmp_path / "a0", FAST, progress=False, shard=Shard(0, 2))
    other = FAST.with_overrides({"cmr.size": 24})
    build_cache(small_cohort, tmp_path / "b1", other, progress=False, shard=Shard(1, 2))
    with pytest.raises(CacheMismatchError, match="different manifests/configs"):
        merge_caches([tmp_path / "a0", tmp_path / "b1"], tmp_path / "merged")
    build_cache(small_cohort, tmp_path / "a1", FAST, progress=False, shard=Shard(1, 2), stop_after=1)
    with pytest.raises(CacheMismatchError, match="not finished"):
        merge_caches([tmp_path / "a0", tmp_path / "a1"], tmp_path / "merged")
    with pytest.raises(CacheMismatchError, match="not a cache"):
        merge_caches([tmp_path / "a0", tmp_path / "nothing"], tmp_path / "merged")


def test_bad_subjects_are_recorded_not_lost(small_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    manifest = pd.read_csv(small_cohort / "manifest.csv").head(5)
    for name in ("ecg", "cmr"):
        (cohort / name).symlink_to(small_cohort / name, target_is_directory=True)
    manifest.loc[0, "ecg"] = "missing.hea"  # a manifest row whose file is missing
    manifest.loc[1, "cmr"] = "missing.nii.gz"
    signal = read_ecg(cohort / manifest.loc[2, "ecg"]).signal
    signal[LEAD_NAMES.index("V1")] = 0.0
    wfdb.wrsamp("flat", fs=500, units=["mV"] * 12, sig_name=list(LEAD_NAMES), p_signal=signal.T.astype(float),
                fmt=["16"] * 12, write_dir=str(cohort))
    manifest.loc[2, "ecg"] = "flat.hea"
    manifest.loc[3, "cmr_seg"] = ""  # no labels: still cached, crop and ES from the image
    manifest.to_csv(cohort / "manifest.csv", index=False)
    summary = build_cache(cohort, tmp_path / "cache", FAST, progress=False)
    failures = pd.read_csv(tmp_path / "cache/failures.csv").set_index("subject_id")
    assert summary["n_cached"] == 2 and summary["n_failed"] == 3 and summary["complete"]
    subjects = manifest.subject_id.tolist()
    assert failures.loc[subjects[0], "stage"] == "read_ecg" and "file not found" in failures.loc[subjects[0], "reason"]
    assert failures.loc[subjects[1], "stage"] == "read_cmr" and "missing.nii.gz" in failures.loc[subjects[1], "reason"]
    assert failures.loc[subjects[2], "stage"] == "ecg_quality" and "flat_lead:V1" in failures.loc[subjects[2], "reason"]
    assert set(pd.read_csv(tmp_path / "cache/index.csv").subject_id) == set(subjects[3:])


def test_augmentations_keep_rpeaks_consistent_and_shapes():
    rng = np.random.default_rng(0)
    fs = 250
    ecg = np.zeros((12, 2500), dtype=np.float32)
    rpeaks = np.arange(100, 2500, 200)
    ecg[:, rpeaks] = 1.0
    cine = np.zeros((20, 32, 32), dtype=np.float32)
    cine[:, 12:20, 12:20] = 1.0
    cropped, moved, shifted = augment_batch(torch.from_numpy(ecg)[None], torch.from_numpy(cine)[None], [rpeaks], fs,
                                            Augmentation(ecg_crop_s=6.0, ecg_noise=0.0, ecg_amplitude=0.0,
                                                         cmr_intensity=0.0), rng)
    cropped, moved, shifted = cropped[0].numpy(), moved[0].numpy(), shifted[0]
    assert cropped.shape == (12, 1500)
    np.testing.assert_array_equal(np.flatnonzero(cropped[0] > 0.5), shifted)
    assert moved.shape == cine.shape and 0.0 <= moved.min() and moved.max() <= 1.0
    assert abs(moved.sum() / cine.sum() - 1.0) < 0.25  # a small affine, not a different image
    np.testing.assert_allclose(moved[0], moved[5])  # the same transform for every frame


def augment_cmr(cmr: np.ndarray, augmentation: Augmentation, rng) -> np.ndarray:
    """Per-subject reference of ``transform_cmr``: one affine built by hand for every frame and slice of one cine,
    then intensity scaling."""
    size = cmr.shape[-1]
    angle, zoom, shift, intensity = (value[0] for value in cmr_parameters(augmentation, rng, 1, size))
    theta = torch.tensor([[math.cos(angle) / zoom, -math.sin(angle) / zoom, shift[0]],
                          [math.sin(angle) / zoom, math.cos(angle) / zoom, shift[1]]], dtype=torch.float32)
    frames = torch.from_numpy(cmr.reshape(-1, 1, size, size))
    grid = torch.nn.functional.affine_grid(theta.expand(frames.shape[0], 2, 3), list(frames.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return np.clip(moved.numpy().reshape(cmr.shape) * intensity, 0.0, 1.0).astype(np.float32)


class _Replay:
    """A stand-in for a numpy Generator whose ``uniform`` draws return given values in order."""

    def __init__(self, values):
        self.values = iter(values)

    def uniform(self, low, high, size=None):
        value = next(self.values)
        return np.asarray(value).reshape(size) if size is not None else value


def test_batched_augmentation_matches_the_per_subject_reference():
    """transform_cmr (one grid_sample for a batch) equals augment_cmr's per-subject affine with the same
    parameters; the ECG scaling and R peaks follow the per-subject rule."""
    rng = np.random.default_rng(1)
    cines = rng.uniform(0, 1, size=(4, 2, 6, 16, 16)).astype(np.float32)  # (B, Z, T, S, S)
    augmentation = Augmentation()
    angle, zoom, shift, intensity = cmr_parameters(augmentation, np.random.default_rng(7), 4, 16)
    batched = transform_cmr(torch.from_numpy(cines), angle, zoom, shift, intensity).numpy()
    for i in range(4):
        replay = _Replay([np.degrees(angle[i]), zoom[i], shift[i] * 16 / 2.0, intensity[i]])  # subject i's draws
        np.testing.assert_allclose(batched[i], augment_cmr(cines[i], augmentation, replay), atol=1e-5)
    ecg = torch.zeros(3, 12, 2500)
    rpeaks = [np.arange(100, 2500, 200)] * 3
    ecg[:, :, 100::200] = 1.0
    out, _, peaks = augment_batch(ecg, torch.from_numpy(cines[:3]), rpeaks, 250.0,
                                  Augmentation(ecg_crop_s=6.0, ecg_noise=0.0, ecg_amplitude=0.2), np.random.default_rng(2))
    assert out.shape == (3, 12, 1500)
    for i in range(3):
        np.testing.assert_array_equal(np.flatnonzero(out[i, 0].numpy() > 0.5), peaks[i])
        assert 0.8 <= float(out[i, 0].max()) <= 1.2


def test_dataset_batches_equal_its_items_without_augmentation(tiny_cache):
    dataset = CacheDataset(tiny_cache, split=None)
    batch = dataset.batch([2, 0, 1])
    for slot, item in enumerate((2, 0, 1)):
        single = dataset[item]
        assert torch.equal(batch["ecg"][slot], single["ecg"]) and torch.equal(batch["cmr"][slot], single["cmr"])
        assert torch.equal(batch["rpeaks"][slot], single["rpeaks"]) and batch["subject_id"][slot] == single["subject_id"]


def test_out_pointing_at_a_folder_of_other_files_is_refused_and_nothing_is_deleted(small_cohort, tmp_path):
    folder = tmp_path / "my_results"
    folder.mkdir()
    (folder / "index.csv").write_text("my own table\n")
    (folder / "notes.txt").write_text("keep me\n")
    with pytest.raises(ValueError, match=r"my_results: the folder holds other files \(notes.txt\)"):
        build_cache(small_cohort, folder, FAST, progress=False)
    assert (folder / "index.csv").read_text() == "my own table\n" and (folder / "notes.txt").exists()
