"""The data contract's tables: every validation rule gets its bad input."""

import pytest

from ptacl_core.io.cohort_tables import CohortError, read_cohort, read_manifest

GOOD_MANIFEST = "subject_id,ecg,cmr,split\na,ecg/a.hea,cmr/a.nii.gz,train\nb,ecg/b.hea,cmr/b.nii.gz,test\n"
GOOD_PHENOTYPES = "subject_id,LVEF_pct\nb,55\na,60\n"


def _cohort(folder, manifest=GOOD_MANIFEST, phenotypes=GOOD_PHENOTYPES):
    (folder / "manifest.csv").write_text(manifest)
    (folder / "phenotypes.csv").write_text(phenotypes)
    return folder


def test_join_is_by_subject_id_not_row_position(tmp_path):
    table = read_cohort(_cohort(tmp_path))
    assert table.set_index("subject_id").LVEF_pct.to_dict() == {"a": 60, "b": 55}


def test_numeric_looking_ids_stay_strings(tmp_path):
    table = read_cohort(_cohort(tmp_path, GOOD_MANIFEST.replace("a,", "007,"), "subject_id,LVEF_pct\n007,60\n"))
    assert "007" in set(table.subject_id)


@pytest.mark.parametrize("manifest, message", [
    ("subject_id,ecg,split\na,ecg/a.hea,train\n", "missing column"),
    (GOOD_MANIFEST + "a,ecg/a2.hea,cmr/a2.nii.gz,val\n", "duplicate subject_id"),
    (GOOD_MANIFEST.replace("test", "holdout"), "unknown split"),
])
def test_bad_manifest_is_refused_naming_the_file(tmp_path, manifest, message):
    _cohort(tmp_path, manifest)
    with pytest.raises(CohortError, match=message) as error:
        read_manifest(tmp_path)
    assert "manifest.csv" in str(error.value)


def test_phenotype_row_without_subject_is_refused(tmp_path):
    _cohort(tmp_path, phenotypes=GOOD_PHENOTYPES + "ghost,40\n")
    with pytest.raises(CohortError, match="not in the manifest.*ghost"):
        read_cohort(tmp_path)


def test_duplicate_phenotype_rows_and_missing_files(tmp_path):
    _cohort(tmp_path, phenotypes=GOOD_PHENOTYPES + "a,61\n")
    with pytest.raises(CohortError, match="duplicate"):
        read_cohort(tmp_path)
    (tmp_path / "manifest.csv").unlink()
    with pytest.raises(CohortError, match="no manifest.csv"):
        read_cohort(tmp_path)


def test_blank_ids_and_splits_are_refused(tmp_path):
    _cohort(tmp_path, GOOD_MANIFEST + ",ecg/c.hea,cmr/c.nii.gz,train\n")
    with pytest.raises(CohortError, match="blank subject_id"):
        read_manifest(tmp_path)
    _cohort(tmp_path, GOOD_MANIFEST + "c,ecg/c.hea,cmr/c.nii.gz,\nd,ecg/d.hea,cmr/d.nii.gz,tets\n")
    with pytest.raises(CohortError, match="unknown split.*<blank>.*tets"):
        read_manifest(tmp_path)


def test_phenotypes_without_subject_column(tmp_path):
    _cohort(tmp_path, phenotypes="eid,LVEF_pct\na,60\n")
    with pytest.raises(CohortError, match="no subject_id column"):
        read_cohort(tmp_path)


def test_an_id_spelled_na_is_an_id_and_missing_phenotypes_are_missing(tmp_path):
    manifest = GOOD_MANIFEST.replace("a,", "NA,")
    table = read_cohort(_cohort(tmp_path, manifest, "subject_id,LVEF_pct,LVM_g\nNA,60,\nb,NA,120\n"))
    rows = table.set_index("subject_id")
    assert "NA" in rows.index and rows.loc["NA", "LVEF_pct"] == 60 and rows.loc["NA", "LVM_g"] != rows.loc["NA", "LVM_g"]
    assert rows.loc["b", "LVEF_pct"] != rows.loc["b", "LVEF_pct"] and rows.loc["b", "LVM_g"] == 120  # NaN != NaN


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    ("subject_id,ecg,cmr,split\na,ecg/a.hea,cmr/a.nii.gz,train\n".encode("utf-16"), "not UTF-8 text"),
])
def test_empty_and_utf16_manifests_name_the_file(tmp_path, content, message):
    (tmp_path / "manifest.csv").write_bytes(content)
    with pytest.raises(CohortError, match=message) as error:
        read_manifest(tmp_path)
    assert "manifest.csv" in str(error.value)


def test_text_in_a_numeric_phenotype_cell_is_refused_when_read(tmp_path):
    _cohort(tmp_path, phenotypes="subject_id,LVEF_pct\nb,55\na,sixty\n")
    with pytest.raises(CohortError, match=r"phenotypes.csv: column LVEF_pct holds text.*'sixty' in row 3 \(subject a\)"):
        read_cohort(tmp_path)

