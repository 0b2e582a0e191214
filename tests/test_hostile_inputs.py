"""Issue 13: hostile and broken inputs. One test (at least) per row of the issue's table, feeding that input and
asserting the new behaviour; a half-broken cohort whose good subjects cache byte-identically; a seeded fuzz run."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ptacl_core import paths
from ptacl_core.io.cmr import MAX_CINE_VOXELS, CmrReadError, read_cmr, read_dicom_series, read_nifti_cine
from ptacl_core.io.cohort_tables import CohortError
from ptacl_core.io.csv_cells import FORMULA_STARTS, escape_cell, read_kit_csv, unescape_cell
from ptacl_core.io.ecg import EcgReadError, read_ecg, write_wfdb
from ptacl_core.preprocessing.build import build_cache
from ptacl_core.preprocessing.cache import Cache
from ptacl_core.preprocessing.cine_cropping import (
    ES_WINDOW,
    CmrQualityError,
    check_cine_quality,
    end_systole_frame,
    preprocess_cmr,
)
from ptacl_core.preprocessing.config import CmrConfig, EcgConfig, PreprocessConfig
from ptacl_core.preprocessing.subject import process_subject, source_frame_interval_ms

FAST = PreprocessConfig(ecg=EcgConfig(fs=250), cmr=CmrConfig(size=32, n_frames=20))
SUNNYBROOK_DICOM = "cmr/sunnybrook/dicom_slice05"


def _ecg(seconds: float = 10.0, fs: int = 500) -> np.ndarray:
    """(12, L) mV: a 75 bpm train of narrow R waves on every lead."""
    t = np.arange(int(seconds * fs)) / fs
    beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / (2 * 0.01**2))
    return np.tile(beat, (12, 1)) * np.linspace(0.5, 1.5, 12)[:, None]


def _write_nifti(path: Path, data: np.ndarray, pixdim=(1.5, 1.5, 8.0, 40.0), units=("mm", "msec")) -> Path:
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_zooms(tuple(abs(v) if np.isfinite(v) and v != 0 else 1.0 for v in pixdim))
    image.header.set_xyzt_units(*units)
    nib.save(image, path)
    return path


def _patch_pixdim(path: Path, index: int, value: float) -> None:
    """Write pixdim[index] into a saved .nii as stored bytes (nibabel itself refuses to save 0 or NaN)."""
    data = bytearray(path.read_bytes())
    data[76 + 4 * index: 80 + 4 * index] = struct.pack("<f", value)
    path.write_bytes(bytes(data))


def _moving_cine(n_frames: int = 20, size: int = 48, slices: int = 1) -> np.ndarray:
    """(size, size, slices, n_frames): a bright disc (the blood pool) shrinking to ES at 35 % of the cycle."""
    x, y = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    r = np.hypot(x - size / 2, y - size / 2)
    phase = np.arange(n_frames) / n_frames
    radius = 10 - 4 * np.exp(-((phase - 0.35) ** 2) / (2 * 0.08**2))
    frames = (r[..., None] < radius[None, None, :]).astype(np.float32) * 200 + 20
    return np.repeat(frames[:, :, None, :], slices, axis=2)


# --- ECG: rate, gain, memory, blocking files -------------------------------------------------------------------

def test_a_header_without_a_length_over_a_huge_sparse_dat_is_refused_before_loading(tmp_path):
    write_wfdb(tmp_path / "r", _ecg(), 500)
    header = (tmp_path / "r.hea").read_text().splitlines()
    header[0] = " ".join(header[0].split()[:3])  # record line without the signal length
    (tmp_path / "r.hea").write_text("\n".join(header) + "\n")
    with open(tmp_path / "r.dat", "r+b") as handle:
        handle.truncate(500 * 1024 * 1024)  # sparse: no disk used
    with pytest.raises(EcgReadError, match="states no signal length.*r.dat holds"):
        read_ecg(tmp_path / "r.hea")


def test_a_long_record_is_read_only_as_far_as_asked(tmp_path):
    write_wfdb(tmp_path / "long", _ecg(seconds=120.0), 500)
    assert read_ecg(tmp_path / "long.hea").signal.shape == (12, 30000)  # default: the first 60 s
    assert read_ecg(tmp_path / "long.hea", max_seconds=11.0).signal.shape == (12, 5500)
    assert read_ecg(tmp_path / "long.hea", max_seconds=None).signal.shape == (12, 60000)
    full = read_ecg(tmp_path / "long.hea", max_seconds=None).signal
    np.testing.assert_array_equal(read_ecg(tmp_path / "long.hea", max_seconds=11.0).signal, full[:, :5500])


def test_a_header_without_a_length_over_a_normal_dat_still_reads(tmp_path):
    write_wfdb(tmp_path / "r", _ecg(), 500)
    header = (tmp_path / "r.hea").read_text().splitlines()
    header[0] = " ".join(header[0].split()[:3])
    (tmp_path / "r.hea").write_text("\n".join(header) + "\n")
    assert read_ecg(tmp_path / "r.hea").signal.shape == (12, 5000)


@pytest.mark.parametrize("name", ["fifo.xml", "fifo.dcm", "fifo.hea"])
def test_a_fifo_as_the_ecg_is_refused_not_waited_on(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(EcgReadError, match="not a regular file"):
        read_ecg(tmp_path / name)


def test_a_fifo_as_the_wfdb_signal_file_is_refused(tmp_path):
    write_wfdb(tmp_path / "r", _ecg(), 500)
    (tmp_path / "r.dat").unlink()
    os.mkfifo(tmp_path / "r.dat")
    with pytest.raises(EcgReadError, match="r.dat: not a regular file"):
        read_ecg(tmp_path / "r.hea")


def test_a_fifo_as_the_cine_is_refused(tmp_path):
    os.mkfifo(tmp_path / "cine.nii.gz")
    with pytest.raises(CmrReadError, match="not a regular file"):
        read_cmr(tmp_path / "cine.nii.gz")


# --- CMR: declared sizes, spacing, timing, type ----------------------------------------------------------------

def test_a_nifti_gz_declaring_a_huge_image_is_refused_before_decompression(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((6000, 6000, 1, 20))
    header.set_data_dtype(np.uint8)
    header.set_zooms((1.0, 1.0, 8.0, 40.0))
    payload = header.binaryblock + b"\0" * 4 + b"\0" * 1_000_000  # the file need not hold the 720 MB it declares
    with gzip.open(tmp_path / "bomb.nii.gz", "wb") as handle:
        handle.write(payload)
    assert (tmp_path / "bomb.nii.gz").stat().st_size < 100_000
    with pytest.raises(CmrReadError, match=f"720 M voxels.*exceeds the {MAX_CINE_VOXELS // 1_000_000} M-voxel limit"):
        read_nifti_cine(tmp_path / "bomb.nii.gz")


def _zip_with_declared_size(path: Path, declared: int) -> None:
    """A zip whose one DICOM member declares ``declared`` bytes uncompressed (local and central headers)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("image.dcm", b"\0" * 1024)
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22: local + 26] = struct.pack("<I", declared)
    data[central + 24: central + 28] = struct.pack("<I", declared)
    path.write_bytes(bytes(data))


def test_a_zip_member_declaring_gigabytes_is_refused_before_reading(tmp_path):
    _zip_with_declared_size(tmp_path / "bomb.zip", 3 * 1024**3 - 1)
    with pytest.raises(CmrReadError, match="image.dcm declares 3071 MiB uncompressed; refused"):
        read_cmr(tmp_path / "bomb.zip")


@pytest.mark.parametrize("shape", [(48, 48, 0, 20), (48, 48, 1, 0)])
def test_a_nifti_with_an_empty_dimension_is_a_named_error(tmp_path, shape):
    path = _write_nifti(tmp_path / "empty.nii", np.zeros(shape, np.float32))
    with pytest.raises(CmrReadError, match="empty dimension"):
        read_nifti_cine(path)


@pytest.mark.parametrize("index, value, message", [
    (1, 0.0, "pixel spacing x = 0 mm is implausible"),
    (2, float("nan"), "pixel spacing y = nan mm is implausible"),
    (1, 1e30, "pixel spacing x = 1e\\+30 mm is implausible"),
    (3, float("nan"), "slice spacing nan mm is implausible"),
    (3, float("inf"), "slice spacing inf mm is implausible"),
])
def test_implausible_voxel_spacing_is_refused_not_replaced(tmp_path, index, value, message):
    path = _write_nifti(tmp_path / "cine.nii", _moving_cine())
    _patch_pixdim(path, index, value)
    with pytest.raises(CmrReadError, match=message):
        read_nifti_cine(path)


def test_a_complex_nifti_is_refused(tmp_path):
    path = _write_nifti(tmp_path / "complex.nii", _moving_cine().astype(np.complex64))
    with pytest.raises(CmrReadError, match="complex-valued"):
        read_nifti_cine(path)


@pytest.mark.parametrize("value, units, expected", [
    (40.0, ("mm", "msec"), 40.0), (0.04, ("mm", "sec"), 40.0), (0.04, ("mm", "unknown"), 40.0),
    (40000.0, ("mm", "usec"), 40.0),
    (1.0, ("mm", "unknown"), None),  # the placeholder of files that store no timing
    (0.0, ("mm", "msec"), None), (float("nan"), ("mm", "msec"), None), (float("inf"), ("mm", "msec"), None),
    (-40.0, ("mm", "msec"), 40.0),  # a negative pixdim's magnitude, as nibabel reads it
])
def test_the_frame_interval_a_nifti_states_or_unknown(tmp_path, value, units, expected):
    path = _write_nifti(tmp_path / "cine.nii", _moving_cine(), units=units)
    _patch_pixdim(path, 4, value)
    interval = read_nifti_cine(path).frame_interval_ms
    if expected is None:
        assert np.isnan(interval)
    else:
        assert interval == pytest.approx(expected)


@pytest.mark.parametrize("interval", [float("nan"), 0.0, -40.0, 1.0, 1e6])
def test_an_unknown_or_implausible_frame_interval_comes_from_the_ecg_and_is_flagged(interval):
    rpeaks = np.array([100, 325, 550, 775, 1000])  # 250 Hz: RR 900 ms
    value, flags = source_frame_interval_ms(interval, 30, rpeaks, 250.0)
    assert value == pytest.approx(30.0) and flags == ["frame_interval_from_ecg"]
    value, flags = source_frame_interval_ms(31.0, 30, rpeaks, 250.0)  # a plausible 930 ms cycle is kept
    assert value == 31.0 and flags == []


# --- CMR quality gate and end-systole ------------------------------------------------------------------------

@pytest.mark.parametrize("image, message", [
    (np.zeros((48, 48, 1, 20), np.float32), "blank or constant"),
    (np.full((48, 48, 1, 20), 7.0, np.float32), "blank or constant"),
    (np.random.default_rng(0).random((2, 2, 1, 20)).astype(np.float32), "2 x 2 pixels: too small"),
    (_moving_cine()[..., :1], "1 frame\\(s\\)"),
    (np.repeat(_moving_cine()[..., :1], 20, axis=-1), "no motion across the 20 frames"),
])
def test_the_cmr_quality_gate(image, message):
    with pytest.raises(CmrQualityError, match=message):
        preprocess_cmr(image, (1.5, 1.5, 8.0), CmrConfig(size=32, n_frames=20))


def test_real_and_moving_cines_pass_the_quality_gate(realdata):
    check_cine_quality(_moving_cine())
    for name in ("cmr/sunnybrook/nifti/SCD0000101_sa_cine_tiny80x80x3x20.nii.gz", SUNNYBROOK_DICOM,
                 "cmr/ukb_demo/1/la_4ch.nii.gz"):
        check_cine_quality(read_cmr(realdata / name).image)


def test_end_systole_in_the_first_or_last_tenth_is_moved_into_the_window_and_flagged():
    cine = _moving_cine(n_frames=50)
    frame, moved = end_systole_frame(cine, None, [0], (24.0, 24.0))
    assert abs(frame - 0.35 * 50) <= 1 and not moved
    # a long-axis-like cine whose bright-pixel count bottoms out at frame 1 (atria filling), true ES at 35 %
    dip = cine.copy()
    dip[..., 1] = np.where(dip[..., 1] > 100, 20.0, dip[..., 1])
    frame, moved = end_systole_frame(dip, None, [0], (24.0, 24.0))
    assert moved and ES_WINDOW[0] * 50 <= frame <= ES_WINDOW[1] * 50 and abs(frame - 0.35 * 50) <= 1
    out = preprocess_cmr(dip, (1.5, 1.5, 8.0), CmrConfig(size=32, n_frames=20))
    assert out.flags == ("es_outside_window",) and out.es_frame == 7


# --- DICOM -----------------------------------------------------------------------------------------------------

def test_a_truncated_file_in_a_dicom_series_is_named(realdata, tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(realdata / SUNNYBROOK_DICOM, folder)
    victim = sorted(folder.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:400])
    with pytest.raises(CmrReadError, match=victim.name):
        read_dicom_series(folder)


# --- Tables ----------------------------------------------------------------------------------------------------

def _brute_force_escape(text):
    if not isinstance(text, str) or text == "":
        return text
    try:
        float(text)
        return text
    except ValueError:
        pass
    return "'" + text if text[0] in "=+-@\t\r'" else text


def test_formula_escaping_against_a_brute_force_reference_and_round_trip():
    rng = np.random.default_rng(3)
    alphabet = list("=+-@'\t\rab1. ")
    texts = ["", "-1.5", "+3", "-inf", "=1+1", "@SUM(A1)", "'quoted", "''", "'", "-x", "NA", "007"]
    texts += ["".join(rng.choice(alphabet, size=rng.integers(1, 6))) for _ in range(2000)]
    for text in texts:
        assert escape_cell(text) == _brute_force_escape(text), text
        assert unescape_cell(escape_cell(text)) == text, text
        if escape_cell(text) != text:
            assert escape_cell(text).startswith("'") and escape_cell(text)[1] in FORMULA_STARTS
    assert escape_cell(3.5) == 3.5 and escape_cell(None) is None


def _cohort_with_ids(source: Path, out: Path, ids: list[str]) -> Path:
    """A cohort folder holding ``len(ids)`` subjects of ``source`` renamed to ``ids``."""
    out.mkdir()
    for name in ("ecg", "cmr"):
        (out / name).symlink_to(source / name, target_is_directory=True)
    manifest = pd.read_csv(source / "manifest.csv", dtype=str).head(len(ids))
    phenotypes = pd.read_csv(source / "phenotypes.csv", dtype={"subject_id": str}).set_index("subject_id")
    phenotypes = phenotypes.loc[manifest.subject_id].reset_index()
    manifest["subject_id"] = ids
    phenotypes["subject_id"] = ids
    manifest["split"] = ["train", "val", "test", "train", "train", "train"][: len(ids)]
    manifest.to_csv(out / "manifest.csv", index=False)
    phenotypes.to_csv(out / "phenotypes.csv", index=False)
    return out


def test_ids_a_spreadsheet_would_run_are_written_safely_and_read_back_verbatim(cohort, tmp_path):
    ids = ["=1+1", "+cmd", "-x", "@SUM(A1)", "NA", "'007"]
    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ids)
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[manifest.subject_id == "NA", "ecg"] = "missing.hea"  # one failure, so failures.csv has an id too
    manifest.to_csv(folder / "manifest.csv", index=False)
    build_cache(folder, tmp_path / "cache", FAST, progress=False)
    for table in ("index.csv", "failures.csv"):
        _safe_cells(tmp_path / "cache" / table)
    assert set(Cache.open(tmp_path / "cache").index.subject_id) == set(ids) - {"NA"}
    assert read_kit_csv(tmp_path / "cache/failures.csv").subject_id.tolist() == ["NA"]
    assert "'=1+1" in (tmp_path / "cache/index.csv").read_text()


# --- Manifest containment --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/etc/passwd", "../elsewhere/x.hea", "ecg/../../x.hea"])
def test_manifest_paths_outside_the_cohort_are_refused_unless_allowed(cohort, tmp_path, path):
    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b"])
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str)
    manifest.loc[0, "ecg"] = path
    manifest.to_csv(folder / "manifest.csv", index=False)
    with pytest.raises(CohortError, match=f"1 path\\(s\\) lie outside the cohort folder \\(a ecg={path}"):
        build_cache(folder, tmp_path / "cache", FAST, progress=False)
    assert not (tmp_path / "cache").exists()
    summary = build_cache(folder, tmp_path / "cache", FAST, progress=False, allow_outside_paths=True)
    assert summary["n_failed"] == 1 and summary["n_cached"] == 1


def test_the_cli_refuses_outside_paths_in_one_line_and_accepts_the_flag(cohort, tmp_path, capsys):
    from ptacl_core.__main__ import main

    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b"])
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str)
    manifest.loc[1, "cmr"] = str((cohort / manifest.loc[1, "cmr"]).resolve())
    manifest.to_csv(folder / "manifest.csv", index=False)
    args = ["preprocess", "--cohort", str(folder), "--out", str(tmp_path / "cache"), "--preset", "tiny", "--workers", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "outside the cohort folder" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--allow-outside-paths"]) == 0


# --- Time and dying workers ------------------------------------------------------------------------------------

def test_a_subject_past_its_time_limit_is_recorded_and_the_build_goes_on(cohort, tmp_path, monkeypatch):
    import wfdb

    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b", "c"])
    original = wfdb.rdrecord

    def stuck_on_b(name, *args, **kwargs):  # inside the reader's own `except Exception`: must still be a timeout
        if "SYN000001" in str(name):
            time.sleep(30)  # a read that never returns
        return original(name, *args, **kwargs)

    monkeypatch.setattr(wfdb, "rdrecord", stuck_on_b)
    start = time.perf_counter()
    summary = build_cache(folder, tmp_path / "cache", FAST, progress=False, subject_timeout_s=1.0)
    assert time.perf_counter() - start < 20
    failures = read_kit_csv(tmp_path / "cache/failures.csv")
    assert summary["n_cached"] == 2 and failures.subject_id.tolist() == ["b"]
    assert failures.stage.tolist() == ["timeout"] and "longer than 1 s" in failures.reason[0]


# A subject that kills or wedges its worker: process_subject patched in this process, inherited by the forked workers.
FORK_ONLY = pytest.mark.skipif(sys.platform != "linux" or multiprocessing.get_all_start_methods()[0] != "fork",
                               reason="the test's workers inherit a patched function through fork")


def _misbehave_on(monkeypatch, subject: str, action) -> None:
    """``process_subject`` runs ``action()`` first in the worker that takes ``subject``."""
    import ptacl_core.preprocessing.subject as subject_module

    original = subject_module.process_subject

    def patched(cohort_dir, row, *args, **kwargs):
        if row["subject_id"] == subject:
            action()
        return original(cohort_dir, row, *args, **kwargs)

    monkeypatch.setattr(subject_module, "process_subject", patched)


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does


def _deaf_for(seconds: float):
    """A worker blocked as in the kernel: no alarm gets through while it waits."""
    def action() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(seconds)
    return action


@FORK_ONLY
def test_a_worker_killed_mid_subject_costs_that_subject_only_and_resume_skips_it(cohort, tmp_path, monkeypatch):
    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b", "c", "d", "e", "f"])
    _misbehave_on(monkeypatch, "c", _sigkill)
    summary = build_cache(folder, tmp_path / "cache", FAST, workers=2, progress=False)
    failures = read_kit_csv(tmp_path / "cache/failures.csv")
    assert summary["complete"] and summary["n_cached"] == 5, (summary, failures)
    assert failures.subject_id.tolist() == ["c"] and failures.stage.tolist() == ["worker_died"]
    assert "signal SIGKILL" in failures.reason[0]
    again = build_cache(folder, tmp_path / "cache", FAST, workers=2, progress=False)  # resume: nothing to redo
    assert again["n_processed_now"] == 0 and again["complete"]


# --- A half-broken cohort, bounded memory, fuzz ----------------------------------------------------------------

REAL_ECGS = ["ecg/muse_xml/muse_ecg1.xml", "ecg/ukb_xml/ukbb_scrubbed.xml", "ecg/wfdb/ptbxl/00001_lr.hea",
             "ecg/wfdb/cinc2021/E07500.hea"]
REAL_CMRS = ["cmr/sunnybrook/nifti/SCD0000101_sa_cine_tiny80x80x3x20.nii.gz", "cmr/ukb_demo/1/la_4ch.nii.gz",
             SUNNYBROOK_DICOM, SUNNYBROOK_DICOM + ".zip"]  # a DICOM folder, and the same slices as a UK Biobank zip


def _copy_record(source: Path, folder: Path) -> Path:
    """Copy an ECG or CMR file (a WFDB record with its signal file) into ``folder``, keeping its name (a WFDB
    header names its signal file). Returns the copy of ``source``."""
    folder.mkdir(parents=True)
    if source.name.endswith(".zip") and not source.exists():  # the DICOM folder zipped as UK Biobank ships a cine
        target = folder / "1000001_20209_2_0.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for image in sorted(source.with_suffix("").iterdir()):
                archive.write(image, f"sax/{image.name}")
        return target
    if source.is_dir():
        shutil.copytree(source, folder / source.name)
        return folder / source.name
    if source.suffix == ".hea":
        for sibling in source.parent.glob(source.stem + ".*"):
            shutil.copy(sibling, folder / sibling.name)
    else:
        shutil.copy(source, folder / source.name)
    return folder / source.name


def _broken_copies(cohort: Path, realdata: Path | None, folder: Path, rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` manifest rows with one damaged file each (truncation, bit flips, header edits): copies of the synthetic
    cohort's files and, when ``realdata`` is there, of real ECG and CMR files; the other file of the pair is good."""
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    rows = []
    for k in range(n):
        source = manifest.iloc[int(rng.integers(len(manifest)))]
        row = {**source.to_dict(), "subject_id": f"BROKEN{k:03d}", "split": "train"}
        target = "ecg" if rng.random() < 0.5 else "cmr"
        real = realdata is not None and rng.random() < 0.4
        if real:
            original = realdata / str(rng.choice(REAL_ECGS if target == "ecg" else REAL_CMRS))
        else:
            original = cohort / source[target]
        copy = _copy_record(original, folder / "broken" / f"b{k:03d}")
        row[target] = str(copy.relative_to(folder))
        if real and target == "cmr":
            row["cmr_seg"] = ""  # the synthetic subject's labels do not fit a real cine
        if target == "ecg" and copy.suffix == ".hea":
            signal_files = [f for f in copy.parent.iterdir() if f.suffix != ".hea"]
            victim = copy if rng.random() < 0.4 or not signal_files else signal_files[0]
        elif copy.is_dir():
            victim = sorted(copy.iterdir())[int(rng.integers(len(list(copy.iterdir()))))]
        else:
            victim = copy
        if victim.name.endswith(".gz") and rng.random() < 0.5:  # mutate the decompressed bytes, then recompress
            raw = bytearray(gzip.decompress(victim.read_bytes()))
            _mutate(raw, rng, header_bytes=352)
            victim.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
        else:
            data = bytearray(victim.read_bytes())
            _mutate(data, rng, header_bytes=len(data) if victim.suffix in (".hea", ".xml") else 1024)
            victim.write_bytes(bytes(data))
        rows.append(row)
    return rows


def _mutate(data: bytearray, rng: np.random.Generator, header_bytes: int) -> None:
    kind = rng.integers(3)
    if kind == 0 and len(data) > 2:  # truncation
        del data[int(rng.integers(1, len(data))):]
    elif kind == 1:  # bit flips
        for _ in range(int(rng.integers(1, 20))):
            position = int(rng.integers(len(data)))
            data[position] ^= 1 << int(rng.integers(8))
    else:  # edits near the start (header fields)
        for _ in range(int(rng.integers(1, 6))):
            position = int(rng.integers(min(header_bytes, len(data))))
            data[position] = int(rng.choice(list(b"0123456789-. \n\x00\xff")))


def _peak_rss_build(cohort: Path, out: Path) -> dict:
    """Build in a fresh process (2 workers) and report its summary and peak RSS (itself and its workers)."""
    code = (
        "import json, resource, sys\n"
        "from ptacl_core.preprocessing.build import build_cache\n"
        "from ptacl_core.preprocessing.config import CmrConfig, EcgConfig, PreprocessConfig\n"
        "config = PreprocessConfig(ecg=EcgConfig(fs=250), cmr=CmrConfig(size=32, n_frames=20))\n"
        "summary = build_cache(sys.argv[1], sys.argv[2], config, workers=2, progress=False, subject_timeout_s=60)\n"
        "rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(json.dumps({**summary, 'peak_rss_mb': rss / 1024}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(cohort), str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _hostile_rows(folder: Path) -> list[dict]:
    """The memory-bomb inputs of the issue as manifest rows (sparse .dat, .nii.gz bomb, zip bomb, FIFO)."""
    hostile = folder / "hostile"
    hostile.mkdir()
    write_wfdb(hostile / "sparse", _ecg(), 500)
    header = (hostile / "sparse.hea").read_text().splitlines()
    header[0] = " ".join(header[0].split()[:3])
    (hostile / "sparse.hea").write_text("\n".join(header) + "\n")
    with open(hostile / "sparse.dat", "r+b") as handle:
        handle.truncate(500 * 1024 * 1024)
    write_wfdb(hostile / "good", _ecg(), 500)
    header = nib.Nifti1Header()
    header.set_data_shape((6000, 6000, 1, 20))
    header.set_data_dtype(np.uint8)
    with gzip.open(hostile / "bomb.nii.gz", "wb") as handle:
        handle.write(header.binaryblock + b"\0" * 4 + b"\0" * 100_000)
    _zip_with_declared_size(hostile / "bomb.zip", 3 * 1024**3 - 1)
    os.mkfifo(hostile / "fifo.xml")
    rows = [("HOSTILE_SPARSE", "hostile/sparse.hea", None), ("HOSTILE_NIIGZ", "hostile/good.hea", "hostile/bomb.nii.gz"),
            ("HOSTILE_ZIP", "hostile/good.hea", "hostile/bomb.zip"), ("HOSTILE_FIFO", "hostile/fifo.xml", None)]
    return [{"subject_id": s, "ecg": e, "cmr": c or "hostile/bomb.nii.gz", "cmr_seg": "", "split": "train"} for s, e, c in rows]


@pytest.mark.slow
def test_half_broken_cohort_good_subjects_byte_identical_bounded_memory_and_fuzz(cohort, tmp_path):
    """A seeded fuzz run over the synthetic cohort's files and the real ones (truncation, bit flips, header edits),
    with the issue's memory bombs: nothing hangs, every subject is cached or failed with a named stage (never
    ``unexpected``), peak RSS stays bounded, and the good subjects' cache is byte-identical to a clean build."""
    realdata = paths.realdata_dir()  # None: the synthetic files alone when the real ones are absent
    good_ids = sorted(pd.read_csv(cohort / "manifest.csv", dtype=str).subject_id)[:8]
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("ecg", "cmr"):
        (clean / name).symlink_to(cohort / name, target_is_directory=True)
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    manifest = manifest[manifest.subject_id.isin(good_ids)]
    manifest.to_csv(clean / "manifest.csv", index=False)
    phenotypes = pd.read_csv(cohort / "phenotypes.csv", dtype={"subject_id": str})
    phenotypes = phenotypes[phenotypes.subject_id.isin(good_ids)]
    phenotypes.to_csv(clean / "phenotypes.csv", index=False)

    broken = tmp_path / "broken"
    shutil.copytree(clean, broken, symlinks=True)
    rng = np.random.default_rng(int(os.environ.get("PTACL_FUZZ_SEED", "2026")))  # other seeds: a longer local fuzz
    extra = pd.DataFrame(_broken_copies(cohort, realdata, broken, rng, 60) + _hostile_rows(broken))
    pd.concat([manifest, extra]).to_csv(broken / "manifest.csv", index=False)
    borrowed = pd.DataFrame([phenotypes.iloc[0].to_dict() | {"subject_id": s} for s in extra.subject_id])
    pd.concat([phenotypes, borrowed]).to_csv(broken / "phenotypes.csv", index=False)

    clean_summary = _peak_rss_build(clean, tmp_path / "clean_cache")
    summary = _peak_rss_build(broken, tmp_path / "broken_cache")
    print("fuzz build:", {k: summary[k] for k in ("n_cached", "n_failed", "failures_by_stage", "peak_rss_mb")})
    assert summary["complete"] and summary["n_subjects"] == len(manifest) + len(extra)
    assert summary["n_cached"] + summary["n_failed"] == summary["n_subjects"]
    assert "unexpected" not in summary["failures_by_stage"], summary["failures_by_stage"]
    assert summary["peak_rss_mb"] < 2048, summary["peak_rss_mb"]
    failures = read_kit_csv(tmp_path / "broken_cache/failures.csv").set_index("subject_id")
    for subject in ("HOSTILE_SPARSE", "HOSTILE_NIIGZ", "HOSTILE_ZIP", "HOSTILE_FIFO"):
        assert subject in failures.index and failures.loc[subject, "stage"] in ("read_ecg", "read_cmr"), subject
    assert failures.reason.str.len().min() > 10  # every failure says why

    a, b = Cache.open(tmp_path / "clean_cache"), Cache.open(tmp_path / "broken_cache")
    assert clean_summary["n_cached"] == len(good_ids)
    rows_b = b.index.set_index("subject_id")
    for _, row in a.index.iterrows():
        other = rows_b.loc[row.subject_id]
        assert np.asarray(a.ecg[row["row"]]).tobytes() == np.asarray(b.ecg[other["row"]]).tobytes()
        assert np.asarray(a.cmr[row["row"]]).tobytes() == np.asarray(b.cmr[other["row"]]).tobytes()
        for column in ("rpeaks", "ed_frame", "es_frame", "frame_interval_ms", "flags"):
            assert row[column] == other[column] or (pd.isna(row[column]) and pd.isna(other[column])), column


def test_a_dicom_series_declaring_huge_images_is_refused_before_decoding(realdata, tmp_path):
    import pydicom

    folder = tmp_path / "series"
    folder.mkdir()
    for source in sorted((realdata / SUNNYBROOK_DICOM).iterdir()):
        dataset = pydicom.dcmread(source)
        dataset.Rows, dataset.Columns = 60000, 60000  # the pixel data no longer fits: never decoded
        dataset.save_as(folder / source.name)
    with pytest.raises(CmrReadError, match="M voxels.*exceeds the 80 M-voxel limit"):
        read_dicom_series(folder)


# --- Checkpoints -----------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this creates a file: the stand-in for arbitrary code in a crafted checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    import torch

    from ptacl_core.__main__ import main
    from ptacl_core.training.runs import find_runs, read_checkpoint

    marker = tmp_path / "pwned"
    run = tmp_path / "runs" / "ptacl_tiny_seed0"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"config": {}, "payload": _Payload(marker)}, run / "checkpoints" / "last.pt")
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported global"):
        read_checkpoint(run)
    assert main(["predict", "--run", str(run), str(tmp_path / "x.hea")]) != 0
    assert "not a loadable checkpoint" in capsys.readouterr().err
    found, notes = find_runs(tmp_path / "runs", "tiny")  # what the notebooks do with every run folder
    assert found == [] and "unreadable checkpoint" in notes[0]
    assert not marker.exists()


def test_a_cine_without_timing_is_cached_with_the_interval_from_its_ecg_and_flagged(cohort, tmp_path):
    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b"])
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    image = nib.load(folder / manifest.loc[0, "cmr"])
    placeholder = nib.Nifti1Image(np.asarray(image.dataobj), image.affine)
    placeholder.header.set_zooms((*image.header.get_zooms()[:3], 1.0))  # ACDC-style: 1, unit unknown
    placeholder.header.set_xyzt_units("mm", "unknown")
    (folder / "own").mkdir()
    nib.save(placeholder, folder / "own" / "a_sa.nii.gz")
    manifest.loc[0, "cmr"] = "own/a_sa.nii.gz"
    manifest.to_csv(folder / "manifest.csv", index=False)
    build_cache(folder, tmp_path / "cache", FAST, progress=False)
    index = Cache.open(tmp_path / "cache").index.set_index("subject_id")
    assert index.loc["a", "flags"] == "frame_interval_from_ecg" and index.loc["b", "flags"] == ""
    rr_ms = np.median(np.diff([int(v) for v in index.loc["a", "rpeaks"].split()])) * 1000 / FAST.ecg.fs
    assert index.loc["a", "frame_interval_ms"] * FAST.cmr.n_frames == pytest.approx(rr_ms)
    # subject b keeps the interval its file states (its cycle is not the ECG's RR: the flag is the difference)
    stated = nib.load(folder / manifest.loc[1, "cmr"]).header.get_zooms()[3]
    source_frames = index.loc["b", "source_frames"]
    assert index.loc["b", "frame_interval_ms"] == pytest.approx(stated * source_frames / FAST.cmr.n_frames, rel=1e-4)


# --- Review follow-ups -----------------------------------------------------------------------------------------

def test_a_multi_segment_wfdb_record_reads_as_its_segments_joined(tmp_path):
    signal = _ecg(seconds=20.0)
    write_wfdb(tmp_path / "seg1", signal[:, :5000], 500)
    write_wfdb(tmp_path / "seg2", signal[:, 5000:], 500)
    (tmp_path / "multi.hea").write_text("multi/2 12 500 10000\nseg1 5000\nseg2 5000\n")
    read = read_ecg(tmp_path / "multi.hea").signal
    assert read.shape == (12, 10000)
    np.testing.assert_allclose(read, signal, atol=1e-3)  # 1 µV counts
    assert read_ecg(tmp_path / "multi.hea", max_seconds=11.0).signal.shape == (12, 5500)


def test_a_corrupt_deflate_stream_in_a_zip_is_a_named_read_error(realdata, tmp_path):
    with zipfile.ZipFile(tmp_path / "1000001_20209_2_0.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted((realdata / SUNNYBROOK_DICOM).iterdir())[:3]:
            archive.write(source, f"sax/{source.name}")
    data = bytearray((tmp_path / "1000001_20209_2_0.zip").read_bytes())
    start = data.find(b"PK\x03\x04") + 30 + len("sax/IM-0121.dcm")  # inside the first member's deflate stream
    data[start + 100: start + 140] = bytes(40)
    (tmp_path / "1000001_20209_2_0.zip").write_bytes(bytes(data))
    with pytest.raises(CmrReadError, match="damaged zip member"):
        read_cmr(tmp_path / "1000001_20209_2_0.zip")


def test_a_negative_pixdim_is_read_as_its_magnitude_like_nibabel(tmp_path):
    path = _write_nifti(tmp_path / "cine.nii", _moving_cine())
    _patch_pixdim(path, 1, -1.5)
    assert read_nifti_cine(path).spacing_mm[0] == pytest.approx(1.5)


@pytest.mark.parametrize("timeout", [-5.0, float("nan"), float("inf")])
def test_a_bad_subject_timeout_is_refused_up_front(cohort, tmp_path, timeout, capsys):
    from ptacl_core.__main__ import main

    with pytest.raises(ValueError, match="subject timeout must be a non-negative number"):
        build_cache(cohort, tmp_path / "cache", FAST, progress=False, subject_timeout_s=timeout)
    with pytest.raises(SystemExit):
        main(["preprocess", "--cohort", str(cohort), "--out", str(tmp_path / "c"), f"--subject-timeout={timeout}"])
    assert "non-negative number of seconds" in capsys.readouterr().err


def test_the_subject_timer_leaves_a_callers_alarm_running(cohort):
    row = pd.read_csv(cohort / "manifest.csv", dtype=str).iloc[0].to_dict()
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        meta, ecg, _ = process_subject(cohort, row, FAST, timeout_s=10.0)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert ecg is not None and 20.0 < remaining <= 30.0


@FORK_ONLY
def test_with_one_worker_a_killed_subject_costs_that_subject_only(cohort, tmp_path, monkeypatch):
    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b", "c"])
    _misbehave_on(monkeypatch, "b", _sigkill)
    summary = build_cache(folder, tmp_path / "cache", FAST, workers=1, progress=False)
    failures = read_kit_csv(tmp_path / "cache/failures.csv")
    assert summary["complete"] and summary["n_cached"] == 2 and failures.stage.tolist() == ["worker_died"]


def _safe_cells(path: Path) -> None:
    import csv

    with open(path, newline="") as handle:
        for row in list(csv.reader(handle))[1:]:
            for cell in row:  # a spreadsheet runs a cell starting with one of these unless it is a number
                if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    float(cell)


def test_text_phenotype_cells_are_escaped_and_merged_shards_do_not_escape_twice(cohort, tmp_path):
    from ptacl_core.preprocessing.build import Shard
    from ptacl_core.preprocessing.merge import merge_caches

    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["=a", "b", "-c", "@d"])
    phenotypes = pd.read_csv(folder / "phenotypes.csv", dtype={"subject_id": str}, keep_default_na=False)
    phenotypes["condition"] = ["=HYPERLINK(\"x\")", "-HCM", "normal", "+1+1"]
    phenotypes.to_csv(folder / "phenotypes.csv", index=False)
    for k in range(2):
        build_cache(folder, tmp_path / f"shard{k}", FAST, progress=False, shard=Shard(k, 2))
    merge_caches([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")
    for table in ("shard0/index.csv", "merged/index.csv", "merged/failures.csv"):
        _safe_cells(tmp_path / table)
    merged = Cache.open(tmp_path / "merged").index.set_index("subject_id")
    assert sorted(merged.index) == sorted(["=a", "b", "-c", "@d"])
    assert merged.loc["=a", "condition"] == "=HYPERLINK(\"x\")" and merged.loc["b", "condition"] == "-HCM"
    assert "''" not in (tmp_path / "merged/index.csv").read_text()


def test_build_manifest_writes_formula_safe_cells_read_back_verbatim(tmp_path):
    from ptacl_core.io.cohort_tables import read_manifest
    from ptacl_core.io.manifest_builder import build_manifest

    (tmp_path / "ecg").mkdir()
    (tmp_path / "cmr").mkdir()
    write_wfdb(tmp_path / "ecg" / "=cmd", _ecg(), 500)
    _write_nifti(tmp_path / "cmr" / "=cmd_sa.nii.gz", _moving_cine())
    rows, _ = build_manifest(tmp_path)
    assert [r["subject_id"] for r in rows] == ["=cmd"]
    _safe_cells(tmp_path / "manifest.csv")
    manifest = read_manifest(tmp_path)
    assert manifest.subject_id.tolist() == ["=cmd"] and manifest.ecg.tolist() == ["ecg/=cmd.hea"]


@FORK_ONLY
def test_a_worker_that_ignores_its_time_limit_is_killed_by_the_watchdog(cohort, tmp_path, monkeypatch):
    import ptacl_core.preprocessing.build as build_module

    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b", "c"])
    _misbehave_on(monkeypatch, "b", _deaf_for(60))
    monkeypatch.setattr(build_module, "WATCHDOG_GRACE_S", 1.0)
    start = time.perf_counter()
    summary = build_cache(folder, tmp_path / "cache", FAST, workers=1, progress=False, subject_timeout_s=5.0)
    assert time.perf_counter() - start < 30
    failures = read_kit_csv(tmp_path / "cache/failures.csv")
    assert summary["complete"] and summary["n_cached"] == 2 and failures.subject_id.tolist() == ["b"]
    assert failures.stage.tolist() == ["timeout"] and "ignored its time limit" in failures.reason[0]


@FORK_ONLY
def test_workers_that_do_not_die_when_killed_are_given_up_on(cohort, tmp_path, monkeypatch):
    import multiprocessing.process

    import ptacl_core.preprocessing.build as build_module

    folder = _cohort_with_ids(cohort, tmp_path / "cohort", ["a", "b", "c"])
    _misbehave_on(monkeypatch, "b", _deaf_for(25))
    monkeypatch.setattr(build_module, "WATCHDOG_GRACE_S", 0.5)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "kill", lambda self: None)  # as a process in state D
    start = time.perf_counter()
    summary = build_cache(folder, tmp_path / "cache", FAST, workers=1, progress=False, subject_timeout_s=3.0)
    assert time.perf_counter() - start < 45
    failures = read_kit_csv(tmp_path / "cache/failures.csv")
    assert summary["complete"] and summary["n_cached"] == 2 and failures.stage.tolist() == ["timeout"]
