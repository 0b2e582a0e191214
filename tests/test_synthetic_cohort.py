"""The synthetic cohort: files, determinism, resume, and agreement between images, ECGs and labels."""

import filecmp
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.stats import spearmanr

from ptacl_core.io.cohort_tables import read_cohort
from ptacl_core.io.ecg import read_wfdb
from ptacl_core.leads import LEAD_NAMES
from ptacl_core.phenotypes import ECG_TRUTH, PHENOTYPES, TEMPORAL_PHENOTYPES, label_volume_curves, phenotypes_from_masks
from ptacl_core.preprocessing.ecg_measures import bandpass, detect_rpeaks, measure_ecg, median_beat, t_wave_end
from ptacl_core.synthetic import CONDITIONS, CohortMismatchError, SynthConfig, generate_cohort, make_subject


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


def test_end_diastole_is_largest_and_end_systole_at_aortic_closure(cohort):
    """ES falls at QRS onset + QS2 (PEP + LVET) of the heart the cine shows; nothing moves before ejection."""
    latents = pd.read_csv(cohort / "latents.csv").set_index("subject_id")
    for row in read_cohort(cohort).itertuples():
        labels = nib.load(cohort / row.cmr_seg)
        volumes = label_volume_curves(np.asarray(labels.dataobj), labels.header.get_zooms()[:3])
        lv = volumes[1]
        assert lv[0] >= lv.max() - 1e-9, row.subject_id
        frame_ms = labels.header.get_zooms()[3]
        es_frame = latents.loc[row.subject_id, "end_systole_after_r_ms"] / frame_ms
        assert abs(int(np.argmin(lv)) - es_frame) <= 1.5, row.subject_id
        # contraction starts after the pre-ejection period: the first frames (before ~R + 20 ms) are still at EDV
        assert lv[0] - lv[int(20.0 // frame_ms)] < 0.5


def test_subject_record_json_holds_latent_and_timing(cohort):
    record = json.loads((cohort / "subjects/SYN000001.json").read_text())
    assert set(record["phenotypes"]) == set(PHENOTYPES) | set(TEMPORAL_PHENOTYPES) and set(record["ecg_truth"]) == set(ECG_TRUTH)
    assert record["latent"]["condition"] in CONDITIONS
    assert record["timing"]["rpeaks"] == wfdb.rdann(str(cohort / "ecg/SYN000001"), "atr").sample.tolist()


def test_qt_outlasts_mechanical_systole_in_failing_hearts_measured_on_ecg_and_masks(cohort):
    """Not circular: T end measured on the ECG (tangent method), end-systole on the masks. In healthy hearts
    the T wave ends before aortic closure; the lower the EF, the later it ends relative to it (Boudoulas)."""
    rows = []
    for row in read_cohort(cohort).itertuples():
        ecg = read_wfdb(cohort / row.ecg)
        rpeaks = detect_rpeaks(ecg.signal, ecg.fs)
        rr_s = float(np.mean(np.diff(rpeaks))) / ecg.fs
        beat = median_beat(bandpass(ecg.signal, ecg.fs, 0.5, 40.0), ecg.fs, rpeaks, 0.3, min(0.9 * rr_s, 0.8))
        t_end_ms = 1000.0 * t_wave_end(beat, ecg.fs, int(0.3 * ecg.fs), rr_s)
        labels = nib.load(cohort / row.cmr_seg)
        volumes = label_volume_curves(np.asarray(labels.dataobj), labels.header.get_zooms()[:3])
        es_ms = int(np.argmin(volumes[1])) * float(labels.header.get_zooms()[3])
        rows.append({"condition": row.condition, "ef": 100.0 * (1 - volumes[1].min() / volumes[1][0]), "lag": t_end_ms - es_ms})
    table = pd.DataFrame(rows)
    assert table[table.condition == "normal"].lag.median() < 0  # T ends before end-systole
    assert np.corrcoef(table.ef, table.lag)[0, 1] < -0.4  # and later relative to it as EF falls


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
        assert abs(np.median(offsets_ms)) <= 5.0, (condition, np.median(offsets_ms))


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_the_preprocessing_r_peaks_sit_on_the_cine_trigger_for_every_condition(cohort, preset):
    """What training sees: R peaks of the cached (filtered, resampled) ECG within 5 ms (median) of the
    generator's R time, the cine's frame 0, for every condition (wide QRS included)."""
    from ptacl_core.preprocessing.config import PreprocessConfig
    from ptacl_core.preprocessing.ecg_filtering import preprocess_ecg

    config = PreprocessConfig.preset(preset).ecg
    table = read_cohort(cohort)
    for condition, group in table.groupby("condition"):
        offsets_ms = []
        for subject in group.subject_id.head(5):
            ecg = read_wfdb(cohort / f"ecg/{subject}.hea")
            truth = wfdb.rdann(str(cohort / f"ecg/{subject}"), "atr").sample / ecg.fs * 1000.0
            found = preprocess_ecg(ecg.signal, ecg.fs, config).rpeaks / config.fs * 1000.0
            nearest = found[np.abs(found[:, None] - truth[None, :]).argmin(axis=0)]
            offsets_ms.extend((nearest - truth)[np.abs(nearest - truth) < 100.0].tolist())
        assert abs(np.median(offsets_ms)) <= 5.0, (condition, np.median(offsets_ms))


def test_temporal_phenotypes_match_the_generator_truth(cohort):
    phenotypes = pd.read_csv(cohort / "phenotypes.csv").set_index("subject_id")
    latents = pd.read_csv(cohort / "latents.csv").set_index("subject_id")
    for name in (*TEMPORAL_PHENOTYPES, *ECG_TRUTH):
        assert name in phenotypes, name
    joined = phenotypes.join(latents.drop(columns=[c for c in latents if c in phenotypes]))
    frame_ms = joined.frame_interval_ms
    assert np.all(np.abs(joined.LV_time_to_ES_ms - joined.end_systole_after_r_ms) <= 1.5 * frame_ms)
    truth_atrial = 100.0 * (1.0 - joined.early_filling_fraction)
    known = joined.LV_atrial_fraction_pct.notna()
    assert known.mean() > 0.9
    assert np.all(np.abs(joined.LV_atrial_fraction_pct[known] - truth_atrial[known]) < 5.0)
    # peak ejection rate of the generator's curve: SV x 1.85 / LVET at the start of ejection
    truth_per = joined.LVSV_mL * 1.85 / joined.lvet_s
    assert np.all(np.abs(joined.LV_PER_mL_s / truth_per - 1.0) < 0.2)
    assert np.allclose(joined.QT_ms, 1000.0 * joined.qtc_s * (60.0 / joined.heart_rate_bpm) ** (1 / 3), atol=0.1)
    assert np.allclose(joined.QRS_ms, 1000.0 * joined.qrs_duration_s, atol=0.1)


def test_systolic_time_intervals_follow_weissler_in_normal_hearts(cohort):
    """PEP, LVET and QS2 of normal synthetic hearts regress on heart rate like Weissler's (by sex)."""
    from ptacl_core.synthetic.latent import weissler_ms

    latents = pd.read_csv(cohort / "latents.csv")
    normal = latents[latents.condition == "normal"]
    qs2_error = [1000.0 * (r.pep_s + r.lvet_s) - weissler_ms(r.sex, "QS2", r.heart_rate_bpm) for r in normal.itertuples()]
    pep_error = [1000.0 * r.pep_s - weissler_ms(r.sex, "PEP", r.heart_rate_bpm) for r in normal.itertuples()]
    assert abs(np.mean(qs2_error)) < 8.0 and abs(np.mean(pep_error)) < 10.0


def test_null_twin_keeps_the_heart_and_decouples_ecg_timing():
    from dataclasses import replace as replaced

    physiological, null = SynthConfig(), replaced(SynthConfig(), coupling="none")
    same_heart, different_timing = 0, 0
    for index in range(12):
        a, b = make_subject(index, 3, physiological), make_subject(index, 3, null)
        assert np.array_equal(a.cine.labels, b.cine.labels) and a.latent.lv_ef == b.latent.lv_ef
        same_heart += 1
        assert b.latent.mechanical_qrs_duration_s == a.latent.qrs_duration_s  # the cine's heart is the same
        different_timing += b.latent.qtc_s != a.latent.qtc_s
        assert a.latent.coupling == "physiological" and b.latent.coupling == "none"
    assert same_heart == 12 and different_timing == 12
    with pytest.raises(ValueError, match="coupling must be one of"):
        SynthConfig(coupling="weak")


def test_cohort_json_records_the_coupling(tmp_path):
    from dataclasses import replace as replaced

    generate_cohort(tmp_path, 2, seed=1, config=replaced(SynthConfig(), coupling="none"), workers=1, progress=False)
    assert json.loads((tmp_path / "cohort.json").read_text())["config"]["coupling"] == "none"
    with pytest.raises(CohortMismatchError):
        generate_cohort(tmp_path, 2, seed=1, workers=1, progress=False)


def test_the_null_coupling_needs_its_own_draw():
    from dataclasses import replace as replaced

    from ptacl_core.synthetic.latent import sample_latent

    with pytest.raises(ValueError, match="twin_rng"):
        sample_latent(np.random.default_rng(0), "SYN000000", replaced(SynthConfig(), coupling="none"))


def test_a_cohort_grown_from_linked_subjects_equals_one_generated_whole(tmp_path):
    from ptacl_core.synthetic.cohort import link_subjects

    generate_cohort(tmp_path / "small", 3, seed=5, workers=1, progress=False)
    generate_cohort(tmp_path / "whole", 5, seed=5, workers=1, progress=False)
    assert link_subjects(tmp_path / "small", tmp_path / "grown", 5) == 3  # the small cohort holds 3 of the 5
    summary = generate_cohort(tmp_path / "grown", 5, seed=5, workers=1, progress=False)
    assert summary["n_skipped"] == 3 and summary["n_written"] == 2
    files = _files(tmp_path / "whole")
    assert files == _files(tmp_path / "grown")
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "whole", tmp_path / "grown", [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []  # the cohort tables too, not only the subjects' files
    assert link_subjects(tmp_path / "small", tmp_path / "grown", 5) == 0  # nothing linked twice


def test_linking_refuses_a_folder_that_is_no_cohort_and_a_grown_cohort_keeps_its_seed(tmp_path):
    from ptacl_core.synthetic.cohort import link_subjects

    with pytest.raises(FileNotFoundError, match="no cohort.json"):
        link_subjects(tmp_path / "nothing", tmp_path / "out", 2)
    generate_cohort(tmp_path / "small", 2, seed=5, workers=1, progress=False)
    link_subjects(tmp_path / "small", tmp_path / "grown", 3)
    with pytest.raises(CohortMismatchError, match="refusing to mix"):
        generate_cohort(tmp_path / "grown", 3, seed=6, workers=1, progress=False)


def test_an_interrupted_link_never_lets_the_larger_cohort_write_into_the_smaller(tmp_path):
    from ptacl_core.synthetic.cohort import link_subjects

    generate_cohort(tmp_path / "small", 3, seed=5, workers=1, progress=False)
    link_subjects(tmp_path / "small", tmp_path / "grown", 3)
    (tmp_path / "grown/subjects/SYN000001.json").unlink()  # a kill after the files, before the record
    source = tmp_path / "small/ecg/SYN000001.dat"
    before, inode = source.read_bytes(), source.stat().st_ino
    generate_cohort(tmp_path / "grown", 3, seed=5, workers=1, progress=False)
    assert (tmp_path / "grown/ecg/SYN000001.dat").stat().st_ino != inode  # written as its own file
    assert source.read_bytes() == before and source.stat().st_nlink == 1
    assert filecmp.cmp(source, tmp_path / "grown/ecg/SYN000001.dat", shallow=False)
    generate_cohort(tmp_path / "other", 1, seed=6, workers=1, progress=False)
    with pytest.raises(CohortMismatchError, match="refusing to link"):
        link_subjects(tmp_path / "small", tmp_path / "other", 3)
    assert not (tmp_path / "other/ecg/SYN000002.dat").exists()  # refused before anything was linked
