"""Manifest building from a folder of files (kit and UK Biobank layouts) and phenotype tables."""

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ptacl_core.io.manifest_builder import SPLIT_FRACTIONS, build_manifest, split_for
from ptacl_core.io.phenotype_tables import (
    UKB_PHENOTYPE_FIELDS,
    PhenotypeTableError,
    read_phenotype_csv,
    read_ukb_phenotypes,
    ukb_column_map,
)
from ptacl_core.phenotypes import PHENOTYPES

# ---------------------------------------------------------------- manifest: kit layout


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture
def kit_cohort(tmp_path) -> Path:
    for name in ("ecg/A.hea", "ecg/B.xml", "ecg/C.hea", "cmr/A_sa.nii.gz", "cmr/A_sa_seg.nii.gz", "cmr/D_sa.nii.gz"):
        _touch(tmp_path / name)
    (tmp_path / "cmr/B").mkdir()
    return tmp_path


def test_kit_layout_rows_and_problems(kit_cohort):
    rows, problems = build_manifest(kit_cohort)
    assert [r["subject_id"] for r in rows] == ["A", "B"]
    a, b = rows
    assert (a["ecg"], a["cmr"], a["cmr_seg"]) == ("ecg/A.hea", "cmr/A_sa.nii.gz", "cmr/A_sa_seg.nii.gz")
    assert (b["ecg"], b["cmr"], b["cmr_seg"]) == ("ecg/B.xml", "cmr/B", "")
    assert all(r["split"] in ("train", "val", "test") for r in rows)
    assert all(r["split"] == split_for(r["subject_id"]) for r in rows)
    assert sorted(problems) == [("C", "manifest", "no CMR file found"), ("D", "manifest", "no ECG file found")]


def test_kit_layout_writes_manifest_csv(kit_cohort):
    rows, _ = build_manifest(kit_cohort)
    with open(kit_cohort / "manifest.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["subject_id", "ecg", "cmr", "cmr_seg", "split"]
        written = list(reader)
    assert written == [{k: str(v) for k, v in r.items()} for r in rows]
    # every path in the manifest resolves relative to the cohort folder
    for r in written:
        assert (kit_cohort / r["ecg"]).exists() and (kit_cohort / r["cmr"]).exists()
        if r["cmr_seg"]:
            assert (kit_cohort / r["cmr_seg"]).exists()


def test_kit_layout_is_deterministic_and_honours_given_splits(kit_cohort):
    first, _ = build_manifest(kit_cohort)
    second, _ = build_manifest(kit_cohort)
    assert first == second
    given, _ = build_manifest(kit_cohort, splits={"A": "test", "B": "val"})
    assert {r["subject_id"]: r["split"] for r in given} == {"A": "test", "B": "val"}


def test_kit_layout_ids_with_underscore_or_dot(tmp_path):
    for name in ("ecg/sub_01.hea", "cmr/sub_01_sa.nii.gz", "ecg/P.1.hea", "cmr/P.1_sa.nii.gz"):
        _touch(tmp_path / name)
    rows, problems = build_manifest(tmp_path)
    assert [r["subject_id"] for r in rows] == ["P.1", "sub_01"]
    assert problems == []


def test_unknown_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        build_manifest(tmp_path, layout="bids")


def test_split_for_is_stable_and_roughly_70_15_15():
    ids = [f"{1000000 + i}" for i in range(2000)]
    splits = [split_for(i) for i in ids]
    assert splits == [split_for(i) for i in ids]
    counts = pd.Series(splits).value_counts(normalize=True)
    for name, fraction in zip(("train", "val", "test"), SPLIT_FRACTIONS, strict=True):
        assert abs(counts.get(name, 0.0) - fraction) <= 0.03, (name, counts.to_dict())
    # an id's split does not depend on which other ids exist
    assert [split_for(i) for i in ids[::7]] == splits[::7]
    # the salt changes the assignment
    assert [split_for(i, salt="other") for i in ids] != splits


# ---------------------------------------------------------------- manifest: UK Biobank bulk layout


def test_ukb_bulk_layout(tmp_path):
    for name in ("bulk/20205/1000001_20205_2_0.xml", "bulk/20209/batch1/1000001_20209_2_0.zip",
                 "bulk/20205/1000002_20205_2_0.xml"):
        _touch(tmp_path / name)
    rows, problems = build_manifest(tmp_path, layout="ukb")
    assert rows == [{
        "subject_id": "1000001", "ecg": "bulk/20205/1000001_20205_2_0.xml",
        "cmr": "bulk/20209/batch1/1000001_20209_2_0.zip", "cmr_seg": "", "split": split_for("1000001"),
    }]
    assert problems == [("1000002", "manifest", "no CMR file found")]
    assert (tmp_path / "manifest.csv").exists()


# ---------------------------------------------------------------- UK Biobank phenotype tables


def _ukb_values() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(np.round(rng.uniform(10, 200, size=(3, len(UKB_PHENOTYPE_FIELDS))), 3),
                        columns=list(UKB_PHENOTYPE_FIELDS))


@pytest.mark.parametrize("style", ["showcase", "rap"])
def test_read_ukb_phenotypes_renames_fields_and_keeps_values(tmp_path, style):
    values = _ukb_values()
    header = {field: (f"{field}-2.0" if style == "showcase" else f"p{field}_i2") for field in UKB_PHENOTYPE_FIELDS}
    table = values.rename(columns=header)
    table.insert(0, "eid", [1000001, 1000002, 1000003])
    table["24100-0.0" if style == "showcase" else "p24100_i0"] = [-1.0, -2.0, -3.0]  # instance 0: ignored
    path = tmp_path / f"ukb_{style}.csv"
    table.to_csv(path, index=False)

    out = read_ukb_phenotypes(path)
    assert list(out.columns) == ["subject_id", *UKB_PHENOTYPE_FIELDS.values()]
    assert set(UKB_PHENOTYPE_FIELDS.values()) == set(PHENOTYPES)
    assert out.subject_id.tolist() == ["1000001", "1000002", "1000003"]
    assert all(isinstance(s, str) for s in out.subject_id)
    for field, name in UKB_PHENOTYPE_FIELDS.items():
        np.testing.assert_allclose(out[name].to_numpy(), values[field].to_numpy(), err_msg=name)
    assert (out["LVEDV_mL"] > 0).all()  # not the instance-0 column


def test_ukb_column_map_finds_only_the_imaging_instance():
    columns = ["eid", "24100-2.0", "24100-0.0", "24100-2.1", "24105-3.0", "p24106_i2", "p24107_i2_a0", "p24108_i3",
               "p31_i2", "21000-2.0"]
    assert ukb_column_map(columns) == {"24100-2.0": "LVEDV_mL", "p24106_i2": "RVEDV_mL", "p24107_i2_a0": "RVESV_mL"}
    assert ukb_column_map(columns, instance=3) == {"24105-3.0": "LVM_g", "p24108_i3": "RVSV_mL"}


def test_read_ukb_phenotypes_drops_subjects_without_any_value(tmp_path):
    path = tmp_path / "ukb.csv"
    path.write_text("eid,24100-2.0,24103-2.0\n1000001,150.5,60.1\n1000002,,\n1000003,,55.0\n")
    out = read_ukb_phenotypes(path)
    assert out.subject_id.tolist() == ["1000001", "1000003"]
    assert out.loc[out.subject_id == "1000003", "LVEF_pct"].item() == pytest.approx(55.0)


def test_read_ukb_phenotypes_without_eid(tmp_path):
    path = tmp_path / "no_eid.csv"
    path.write_text("subject,24100-2.0\n1000001,150\n")
    with pytest.raises(PhenotypeTableError, match="no eid column") as error:
        read_ukb_phenotypes(path)
    assert str(path) in str(error.value)


def test_read_ukb_phenotypes_without_any_field(tmp_path):
    path = tmp_path / "no_fields.csv"
    path.write_text("eid,21000-0.0,24100-0.0\n1000001,1001,150\n")
    with pytest.raises(PhenotypeTableError, match="none of fields 24100-24109") as error:
        read_ukb_phenotypes(path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- generic phenotype CSV


def test_read_phenotype_csv_with_a_column_map(tmp_path):
    path = tmp_path / "site.csv"
    path.write_text("patient,edv,esv,mass,note\n007,150.5,60.25,110.0,x\n012,120.0,45.0,90.5,y\n")
    out = read_phenotype_csv(path, {"edv": "LVEDV_mL", "esv": "LVESV_mL", "mass": "LVM_g"}, id_column="patient")
    assert list(out.columns) == ["subject_id", "LVEDV_mL", "LVESV_mL", "LVM_g"]
    assert out.subject_id.tolist() == ["007", "012"]  # ids stay strings: leading zeros kept
    assert out.LVEDV_mL.tolist() == [150.5, 120.0]
    assert out.LVESV_mL.tolist() == [60.25, 45.0]
    assert out.LVM_g.tolist() == [110.0, 90.5]


def test_read_phenotype_csv_refuses_an_unknown_kit_name(tmp_path):
    path = tmp_path / "site.csv"
    path.write_text("subject_id,edv\nA,150\n")
    with pytest.raises(PhenotypeTableError, match="LV_EDV") as error:
        read_phenotype_csv(path, {"edv": "LV_EDV"})
    assert str(path) in str(error.value)


def test_read_phenotype_csv_refuses_duplicate_ids(tmp_path):
    path = tmp_path / "site.csv"
    path.write_text("subject_id,edv\nA,150\nB,140\nA,151\n")
    with pytest.raises(PhenotypeTableError, match="duplicate") as error:
        read_phenotype_csv(path, {"edv": "LVEDV_mL"})
    assert "A" in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("column_map, id_column, missing", [
    ({"esv": "LVESV_mL"}, "subject_id", "esv"),
    ({"edv": "LVEDV_mL"}, "patient", "patient"),
])
def test_read_phenotype_csv_refuses_a_missing_column(tmp_path, column_map, id_column, missing):
    path = tmp_path / "site.csv"
    path.write_text("subject_id,edv\nA,150\n")
    with pytest.raises(PhenotypeTableError, match="missing column") as error:
        read_phenotype_csv(path, column_map, id_column=id_column)
    assert missing in str(error.value) and str(path) in str(error.value)


def test_ukb_field_numbers_map_to_the_right_phenotypes(tmp_path):
    """Written out by hand (not from the table under test): the showcase's field titles."""
    path = tmp_path / "ukb.csv"
    path.write_text("eid,24100-2.0,24103-2.0,24105-2.0,24106-2.0,24109-2.0\n1000001,150,60,100,160,55\n")
    row = read_ukb_phenotypes(path).iloc[0]
    assert (row.LVEDV_mL, row.LVEF_pct, row.LVM_g, row.RVEDV_mL, row.RVEF_pct) == (150, 60, 100, 160, 55)


def test_several_cmr_files_prefer_short_axis_or_are_reported(tmp_path):
    for name in ("ecg/S1.hea", "cmr/S1_la_4ch.nii.gz", "cmr/S1_sa.nii.gz", "ecg/S2.hea", "cmr/S2_a.nii.gz", "cmr/S2_b.nii.gz"):
        _touch(tmp_path / name)
    rows, problems = build_manifest(tmp_path)
    assert [(r["subject_id"], r["cmr"]) for r in rows] == [("S1", "cmr/S1_sa.nii.gz")]
    assert problems[0][0] == "S2" and "several candidate files" in problems[0][2]


def test_kit_layout_lists_muse_and_dicom_ecgs(tmp_path, realdata):
    import shutil

    from pydicom.data import get_testdata_file

    from ptacl_core.io.manifest_builder import build_manifest

    (tmp_path / "ecg").mkdir()
    (tmp_path / "cmr").mkdir()
    shutil.copy(realdata / "ecg/muse_xml/muse_ecg1.xml", tmp_path / "ecg/p001.xml")
    shutil.copy(get_testdata_file("waveform_ecg.dcm"), tmp_path / "ecg/p002.dcm")
    for subject in ("p001", "p002"):
        (tmp_path / f"cmr/{subject}_sa").mkdir()  # a DICOM series folder each (empty: only listing is tested)
    rows, _ = build_manifest(tmp_path)
    found = {row["subject_id"]: row["ecg"] for row in rows}
    assert found.get("p001", "").endswith("p001.xml") and found.get("p002", "").endswith("p002.dcm"), rows


def test_a_manifest_write_that_fails_keeps_the_previous_manifest_and_no_temporary(kit_cohort, monkeypatch):
    import csv

    build_manifest(kit_cohort)
    before = (kit_cohort / "manifest.csv").read_bytes()

    def full_disk(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", full_disk)
    with pytest.raises(OSError, match="manifest.csv"):
        build_manifest(kit_cohort)
    assert (kit_cohort / "manifest.csv").read_bytes() == before  # not truncated
    assert sorted(p.name for p in kit_cohort.iterdir()) == ["cmr", "ecg", "manifest.csv"]  # no temporary left
