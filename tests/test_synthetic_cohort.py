"""The synthetic cohort: files, determinism, resume, and agreement between images, ECGs and labels."""

import filecmp
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.stats import spearmanr

from ptacl_core.cohort_tables import read_cohort
from ptacl_core.ecg_measures import bandpass, detect_rpeaks, measure_ecg, median_beat, t_wave_end
from ptacl_core.io.ecg import read_wfdb
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.phenotypes import PHENOTYPES, label_volume_curves, phenotypes_from_masks
from ptacl_core.synthetic import CONDITIONS, CohortMismatchError, SynthConfig, generate_cohort


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != "cohort.json")


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = generate_cohort(tmp_path / "a", 10, seed=3, workers=1, progress=False)
    second = generate_cohort(tmp_path / "b", 10, seed=3, workers=2, progress=False)  # >= 8 jobs: the process pool
    assert first["n_written"] == second["n_written"] == 10
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b")
    assert any(str(f).endswith(".nii.gz") for f in files) and any(str(f).endswith(".dat") for f in files)
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_gives_other_subjects(tmp_path):
    generate_cohort(tmp_path / "a", 2, seed=3, workers=1, progress=False)
    generate_cohort(tmp_path / "b", 2, seed=4, workers=1, progress=False)
    assert not filecmp.cmp(tmp_path / "a/ecg/SYN000001.dat", tmp_path / "b/ecg/SYN000001.dat", shallow=False)


def test_subject_does_not_depend_on_cohort_size(tmp_path, cohort):
    generate_cohort(tmp_path / "small", 3, seed=7, workers=1, progress=False)
    for name in ("ecg/SYN000002.dat", "ecg/SYN000002.hea", "cmr/SYN000002_sa.nii.gz", "cmr/SYN000002_sa_seg.nii.gz"):
        assert filecmp.cmp(tmp_path / "small" / name, cohort / name, shallow=False), name


def test_interrupted_run_resumes_and_equals_uninterrupted(tmp_path):
    out = tmp_path / "c"
    generate_cohort(out, 4, seed=5, workers=1, progress=False)
    reference = {p: p.read_bytes() for p in (out / "cmr").iterdir()}
    # Simulate a kill during subject 2: its completion record and one image are missing.
    (out / "subjects/SYN000002.json").unlink()
    (out / "cmr/SYN000002_sa.nii.gz").unlink()
    summary = generate_cohort(out, 4, seed=5, workers=1, progress=False)
    assert summary["n_skipped"] == 3 and summary["n_written"] == 1
    assert {p: p.read_bytes() for p in (out / "cmr").iterdir()} == reference
    again = generate_cohort(out, 4, seed=5, workers=1, progress=False)
    assert again["n_written"] == 0 and again["n_skipped"] == 4


def test_folder_with_another_config_is_refused(tmp_path):
    generate_cohort(tmp_path, 1, seed=5, workers=1, progress=False)
    with pytest.raises(CohortMismatchError, match="refusing to mix"):
        generate_cohort(tmp_path, 1, seed=6, workers=1, progress=False)
    with pytest.raises(CohortMismatchError):
        generate_cohort(tmp_path, 1, seed=5, config=SynthConfig(n_slices=4), workers=1, progress=False)


@pytest.mark.parametrize(
    "bad, message",
    [({"n_slices": 2}, "n_slices"), ({"n_frames": 5}, "n_frames"), ({"image_size": 32}, "image_size"),
     ({"condition_weights": {"amyloid": 1.0}}, "unknown condition"), ({"split_fractions": (0.5, 0.2, 0.2)}, "sum to 1")],
)
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**bad)


def test_wfdb_files_read_back_with_names_units_and_shape(cohort):
    record = wfdb.rdrecord(str(cohort / "ecg/SYN000000"))
    assert record.sig_name == list(LEAD_NAMES)
    assert record.units == ["mV"] * 12
    assert record.fs == 500 and record.p_signal.shape == (5000, 12)
    assert np.all(np.abs(record.p_signal) < 5.0)  # mV, not µV
    annotation = wfdb.rdann(str(cohort / "ecg/SYN000000"), "atr")
    assert set(annotation.symbol) == {"N"} and len(annotation.sample) >= 5


def test_nifti_files_read_back_with_shape_spacing_and_frame_interval(cohort):
    table = read_cohort(cohort)
    latents = pd.read_csv(cohort / "latents.csv")
    row = table.iloc[0]
    image = nib.load(cohort / row.cmr)
    labels = nib.load(cohort / row.cmr_seg)
    assert image.shape == labels.shape == (80, 80, 3, 50)
    assert image.get_data_dtype() == np.int16 and labels.get_data_dtype() == np.uint8
    zooms = image.header.get_zooms()
    assert zooms[:2] == (2.0, 2.0) and 15.0 < zooms[2] < 45.0
    hr = latents.set_index("subject_id").loc[row.subject_id, "heart_rate_bpm"]
    assert zooms[3] == pytest.approx(60000.0 / hr / 50, rel=1e-4)  # ms per frame: one RR over 50 frames
    assert image.header.get_xyzt_units() == ("mm", "msec")
    assert set(np.unique(np.asarray(labels.dataobj))) == {0, 1, 2, 3}


def test_phenotypes_recomputed_from_masks_match_the_table(cohort):
    table = read_cohort(cohort)
    for row in table.head(15).itertuples():
        labels = nib.load(cohort / row.cmr_seg)
        measured = phenotypes_from_masks(np.asarray(labels.dataobj), labels.header.get_zooms()[:3], row.HR_bpm)
        assert abs(measured["LVEF_pct"] - row.LVEF_pct) < 0.5
        for name in PHENOTYPES:
            assert measured[name] == pytest.approx(getattr(row, name), abs=0.01), name


def test_normal_phenotypes_sit_near_uk_biobank_reference(cohort):
    table = read_cohort(cohort)
    normal = table[table.condition == "normal"]
    assert 45 <= normal.LVEF_pct.mean() <= 70
    assert 100 <= normal.LVEDV_mL.mean() <= 200
    assert (table.LVEF_pct.between(10, 85)).all() and (table.LVM_g.between(30, 300)).all()


def test_conditions_carry_their_imaging_signature(cohort):
    table = read_cohort(cohort)
    by_condition = table.groupby("condition")
    assert set(table.condition) == set(CONDITIONS)
    assert by_condition.LVEF_pct.mean()["dilated_cardiomyopathy"] < by_condition.LVEF_pct.mean()["normal"] - 15
    assert by_condition.LVEDV_mL.mean()["dilated_cardiomyopathy"] > by_condition.LVEDV_mL.mean()["normal"] * 1.3
    assert by_condition.LVM_g.mean()["lv_hypertrophy"] > by_condition.LVM_g.mean()["normal"] * 1.3
    assert by_condition.LVEF_pct.mean()["myocardial_infarction"] < by_condition.LVEF_pct.mean()["normal"] - 8


def test_splits_are_70_15_15_within_each_condition(cohort):
    table = read_cohort(cohort)
    for condition, group in table.groupby("condition"):
        counts = group.split.value_counts()
        assert abs(counts.get("train", 0) - 0.70 * len(group)) <= 1, condition
        assert abs(counts.get("val", 0) - 0.15 * len(group)) <= 1, condition


def test_heart_rate_measured_from_ecg_matches_latent(cohort):
    table = read_cohort(cohort)
    errors = []
    for row in table.itertuples():
        ecg = read_wfdb(cohort / row.ecg)
        rpeaks = detect_rpeaks(ecg.signal, ecg.fs)
        errors.append(60.0 * ecg.fs / np.mean(np.diff(rpeaks)) - row.HR_bpm)
    assert np.max(np.abs(errors)) < 2.0


def test_detected_rpeaks_match_the_annotation(cohort):
    for subject in ("SYN000000", "SYN000001", "SYN000002"):
        ecg = read_wfdb(cohort / f"ecg/{subject}.hea")
        truth = wfdb.rdann(str(cohort / f"ecg/{subject}"), "atr").sample
        found = detect_rpeaks(ecg.signal, ecg.fs)
        distance = np.abs(found[:, None] - truth[None, :]).min(axis=1)
        assert len(found) >= len(truth) - 1 and np.all(distance <= 0.05 * ecg.fs)


def test_qrs_voltage_rises_with_lv_mass(cohort):
    table = read_cohort(cohort)
    voltage = []
    for row in table.itertuples():
        ecg = read_wfdb(cohort / row.ecg)
        voltage.append(measure_ecg(ecg.signal, ecg.fs).qrs_voltage_sum_mv)
    assert spearmanr(voltage, table.LVM_g).statistic > 0.5


def test_conduction_delay_has_wide_measured_qrs(cohort):
    table = read_cohort(cohort)
    widths = {}
    for condition in ("normal", "conduction_delay"):
        rows = table[table.condition == condition].head(4)
        widths[condition] = [measure_ecg(read_wfdb(cohort / p).signal, 500).qrs_ms for p in rows.ecg]
    assert min(widths["conduction_delay"]) > 120 > max(widths["normal"])


def test_end_diastole_is_largest_and_end_systole_at_t_wave_end(cohort):
    latents = pd.read_csv(cohort / "latents.csv").set_index("subject_id")
    for row in read_cohort(cohort).itertuples():
        labels = nib.load(cohort / row.cmr_seg)
        volumes = label_volume_curves(np.asarray(labels.dataobj), labels.header.get_zooms()[:3])
        lv = volumes[1]
        assert lv[0] >= lv.max() - 1e-9, row.subject_id
        frame_ms = labels.header.get_zooms()[3]
        t_end_frame = latents.loc[row.subject_id, "t_end_after_r_ms"] / frame_ms
        assert abs(int(np.argmin(lv)) - t_end_frame) <= 1.0, row.subject_id
        # contraction starts after QRS onset: the first frames (before ~R + 20 ms) are still at EDV
        assert lv[0] - lv[int(20.0 // frame_ms)] < 0.5


def test_subject_record_json_holds_latent_and_timing(cohort):
    record = json.loads((cohort / "subjects/SYN000001.json").read_text())
    assert set(record["phenotypes"]) == set(PHENOTYPES)
    assert record["latent"]["condition"] in CONDITIONS
    assert record["timing"]["rpeaks"] == wfdb.rdann(str(cohort / "ecg/SYN000001"), "atr").sample.tolist()


def test_end_systole_is_near_the_t_wave_end_measured_on_the_ecg(cohort):
    """Not circular: the T end is measured on the ECG (tangent method), the ES frame on the masks."""
    differences, frame_lengths = [], []
    for row in read_cohort(cohort).head(30).itertuples():
        ecg = read_wfdb(cohort / row.ecg)
        rpeaks = detect_rpeaks(ecg.signal, ecg.fs)
        rr_s = float(np.mean(np.diff(rpeaks))) / ecg.fs
        beat = median_beat(bandpass(ecg.signal, ecg.fs, 0.5, 40.0), ecg.fs, rpeaks, 0.3, min(0.9 * rr_s, 0.8))
        t_end_ms = 1000.0 * t_wave_end(beat, ecg.fs, int(0.3 * ecg.fs), rr_s)
        labels = nib.load(cohort / row.cmr_seg)
        frame_ms = float(labels.header.get_zooms()[3])
        lv = label_volume_curves(np.asarray(labels.dataobj), labels.header.get_zooms()[:3])[1]
        differences.append(int(np.argmin(lv)) * frame_ms - t_end_ms)
        frame_lengths.append(frame_ms)
    differences, frame_lengths = np.array(differences), np.array(frame_lengths)
    assert abs(np.median(differences)) <= np.median(frame_lengths)  # within one frame, typically
    assert np.all(np.abs(differences) <= frame_lengths + 25.0)  # + the tangent method's own spread


def test_detected_r_peaks_sit_on_the_cine_trigger_for_every_condition(cohort):
    """The R peak found on the ECG is the cine's frame-0 trigger, whatever the QRS shape: no
    condition-dependent phase shift between the modalities."""
    table = read_cohort(cohort)
    for condition, group in table.groupby("condition"):
        offsets_ms = []
        for subject in group.subject_id.head(4):
            ecg = read_wfdb(cohort / f"ecg/{subject}.hea")
            truth = wfdb.rdann(str(cohort / f"ecg/{subject}"), "atr").sample
            found = detect_rpeaks(ecg.signal, ecg.fs)
            nearest = found[np.abs(found[:, None] - truth[None, :]).argmin(axis=0)]
            matched = np.abs(nearest - truth) < 0.1 * ecg.fs
            offsets_ms.extend(((nearest - truth)[matched] / ecg.fs * 1000.0).tolist())
        assert abs(np.median(offsets_ms)) <= 8.0, (condition, np.median(offsets_ms))
