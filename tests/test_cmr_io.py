"""CMR readers (NIfTI, DICOM folder, UK Biobank zip) on real files and on bad inputs."""

import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from ptacl_core.io.cmr import (
    Cine,
    CmrReadError,
    read_cmr,
    read_dicom_series,
    read_nifti_cine,
    read_nifti_labels,
    read_ukb_cmr_zip,
)

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # Sunnybrook's UIDs

SUNNYBROOK_DICOM = "cmr/sunnybrook/dicom_slice05"
SUNNYBROOK_TINY = "cmr/sunnybrook/nifti/SCD0000101_sa_cine_tiny80x80x3x20.nii.gz"
UKB_DEMO = "cmr/ukb_demo"


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".dcm")


def _by_trigger_time(folder: Path) -> list[pydicom.Dataset]:
    datasets = [pydicom.dcmread(p) for p in _dicom_files(folder)]
    return sorted(datasets, key=lambda d: float(d.TriggerTime))


def _to_bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- Sunnybrook DICOM folder


def test_sunnybrook_dicom_folder_shape_spacing_and_frame_interval(realdata):
    folder = realdata / SUNNYBROOK_DICOM
    cine = read_dicom_series(folder)
    assert isinstance(cine, Cine)
    assert cine.image.shape == (256, 256, 1, 20) and cine.n_frames == 20
    assert cine.image.dtype == np.float32
    assert cine.spacing_mm[0] == pytest.approx(1.367, abs=1e-3)
    assert cine.spacing_mm[1] == pytest.approx(1.367, abs=1e-3)
    times = np.array([float(d.TriggerTime) for d in _by_trigger_time(folder)])
    assert cine.frame_interval_ms == pytest.approx(float(np.median(np.diff(times))), rel=1e-6)
    assert cine.frame_interval_ms == pytest.approx(37.97, abs=0.05)


def test_sunnybrook_dicom_frames_follow_trigger_time(realdata):
    folder = realdata / SUNNYBROOK_DICOM
    cine = read_dicom_series(folder)
    for k, dataset in enumerate(_by_trigger_time(folder)):
        # DICOM rows are y: the reader stores (rows, cols) transposed as (x, y)
        np.testing.assert_array_equal(cine.image[:, :, 0, k], dataset.pixel_array.astype(np.float32).T)


def test_dicom_frames_are_ordered_by_trigger_time_not_file_name(realdata, tmp_path):
    """The real folder's file names already follow trigger time; rename the copies so they run backwards."""
    datasets = _by_trigger_time(realdata / SUNNYBROOK_DICOM)
    n = len(datasets)
    for k, dataset in enumerate(datasets):
        (tmp_path / f"IM-{n - k:04d}.dcm").write_bytes(_to_bytes(dataset))
    cine = read_dicom_series(tmp_path)
    assert cine.image.shape == (256, 256, 1, 20)
    for k, dataset in enumerate(datasets):
        np.testing.assert_array_equal(cine.image[:, :, 0, k], dataset.pixel_array.astype(np.float32).T)


def test_read_cmr_dispatches_a_folder_to_the_dicom_reader(realdata):
    folder = realdata / SUNNYBROOK_DICOM
    cine = read_cmr(folder)
    direct = read_dicom_series(folder)
    assert cine.image.shape == (256, 256, 1, 20)
    np.testing.assert_array_equal(cine.image, direct.image)
    assert cine.spacing_mm == direct.spacing_mm and cine.frame_interval_ms == direct.frame_interval_ms
    assert Path(cine.source) == folder


# ---------------------------------------------------------------- NIfTI cines


def test_ukb_demo_long_axis_cmr_converts_seconds_to_ms(realdata):
    path = realdata / UKB_DEMO / "1/la_4ch.nii.gz"
    assert nib.load(path).header.get_zooms()[3] == pytest.approx(0.01752, rel=1e-4)  # seconds, unit 'unknown'
    cine = read_nifti_cine(path)
    assert cine.image.shape == (208, 180, 1, 50) and cine.n_frames == 50
    assert cine.image.dtype == np.float32
    assert cine.spacing_mm[0] == pytest.approx(1.827, abs=1e-3)
    assert cine.spacing_mm[1] == pytest.approx(1.827, abs=1e-3)
    assert cine.frame_interval_ms == pytest.approx(17.52, abs=0.01)
    via_dispatch = read_cmr(path)
    assert via_dispatch.image.shape == cine.image.shape and via_dispatch.frame_interval_ms == cine.frame_interval_ms


def test_sunnybrook_tiny_nifti_cine(realdata):
    cine = read_cmr(realdata / SUNNYBROOK_TINY)
    assert cine.image.shape == (80, 80, 3, 20)
    assert cine.frame_interval_ms == pytest.approx(40.0)
    assert cine.spacing_mm[0] == pytest.approx(1.367, abs=1e-3)
    assert cine.spacing_mm[2] == pytest.approx(10.0, abs=1e-3)


# ---------------------------------------------------------------- segmentations → phenotypes


def test_ukb_demo_segmentation_volumes_match_the_pipeline_table(realdata):
    subject = realdata / UKB_DEMO / "1"
    volumes = {}
    for phase in ("ED", "ES"):
        path = subject / f"seg_sa_{phase}.nii.gz"
        labels = read_nifti_labels(path)
        assert labels.dtype == np.uint8 and labels.ndim == 3
        assert set(np.unique(labels)) <= {0, 1, 2, 3}
        voxel_ml = float(np.prod(nib.load(path).header.get_zooms()[:3])) / 1000.0
        volumes[phase] = {label: float(np.count_nonzero(labels == label)) * voxel_ml for label in (1, 2, 3)}
    table = pd.read_csv(realdata / UKB_DEMO / "table_ventricular_volume.csv", index_col=0)
    expected = table.loc[1]
    assert volumes["ED"][1] == pytest.approx(expected["LVEDV (mL)"], abs=0.5)
    assert volumes["ES"][1] == pytest.approx(expected["LVESV (mL)"], abs=0.5)
    assert volumes["ED"][3] == pytest.approx(expected["RVEDV (mL)"], abs=0.5)
    assert volumes["ES"][3] == pytest.approx(expected["RVESV (mL)"], abs=0.5)
    assert volumes["ED"][2] * 1.05 == pytest.approx(expected["LVM (g)"], abs=0.5)


# ---------------------------------------------------------------- bad inputs


def _assert_names(error: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(error.value)
    assert error.value.path == str(path)


def test_three_d_nifti_is_not_a_cine(tmp_path):
    path = tmp_path / "three_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), path)
    with pytest.raises(CmrReadError, match="must be 4-D") as error:
        read_nifti_cine(path)
    _assert_names(error, path)
    with pytest.raises(CmrReadError, match="must be 4-D"):
        read_cmr(path)


def test_garbage_bytes_are_not_nifti(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"this is not a NIfTI file at all \x00\x01\x02" * 20)
    with pytest.raises(CmrReadError, match="not readable as NIfTI") as error:
        read_nifti_cine(path)
    _assert_names(error, path)
    with pytest.raises(CmrReadError, match="not readable as NIfTI") as error:
        read_nifti_labels(path)
    _assert_names(error, path)


def test_nifti_with_nan_voxels(tmp_path):
    path = tmp_path / "nan.nii.gz"
    data = np.ones((6, 6, 2, 5), np.float32)
    data[3, 3, 1, 2] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(CmrReadError, match="non-finite") as error:
        read_nifti_cine(path)
    _assert_names(error, path)


def test_dicom_folder_mixing_two_series(realdata, tmp_path):
    other_series = generate_uid()
    for k, source in enumerate(_dicom_files(realdata / SUNNYBROOK_DICOM)[:4]):
        dataset = pydicom.dcmread(source)
        if k >= 2:
            dataset.SeriesInstanceUID = other_series
        (tmp_path / source.name).write_bytes(_to_bytes(dataset))
    with pytest.raises(CmrReadError, match="mixes 2 series") as error:
        read_dicom_series(tmp_path)
    _assert_names(error, tmp_path)


def test_empty_folder_has_no_dicom_images(tmp_path):
    with pytest.raises(CmrReadError, match="no DICOM images") as error:
        read_dicom_series(tmp_path)
    _assert_names(error, tmp_path)


def test_folder_of_non_dicom_files_has_no_dicom_images(tmp_path):
    (tmp_path / "README.txt").write_text("not an image")
    with pytest.raises(CmrReadError, match="no DICOM images"):
        read_cmr(tmp_path)


def test_read_cmr_on_a_missing_path(tmp_path):
    path = tmp_path / "nowhere"
    with pytest.raises(CmrReadError, match="file not found") as error:
        read_cmr(path)
    _assert_names(error, path)


@pytest.mark.parametrize("name", ["nowhere.nii.gz", "nowhere.zip"])
def test_read_cmr_on_a_missing_file_with_a_known_extension_names_it(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(CmrReadError, match="file not found") as error:
        read_cmr(path)
    _assert_names(error, path)


def test_read_cmr_on_an_unknown_extension(tmp_path):
    path = tmp_path / "scan.mha"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CmrReadError, match="unknown CMR format") as error:
        read_cmr(path)
    _assert_names(error, path)


def test_zip_that_is_not_a_zip(tmp_path):
    path = tmp_path / "1000001_20209_2_0.zip"
    path.write_bytes(b"PK but not really a zip archive" * 10)
    with pytest.raises(CmrReadError, match="not a readable zip") as error:
        read_ukb_cmr_zip(path)
    _assert_names(error, path)
    with pytest.raises(CmrReadError, match="not a readable zip"):
        read_cmr(path)


def test_zip_with_a_damaged_dicom_names_the_member(tmp_path):
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("slice0/IM-0.dcm", b"not a DICOM")
    with pytest.raises(CmrReadError, match="slice0/IM-0.dcm") as error:
        read_ukb_cmr_zip(path)
    _assert_names(error, path)


# ---------------------------------------------------------------- UK Biobank-style zip


N_SLICES = 3
SLICE_GAP_MM = 10.0


@pytest.fixture
def ukb_style_zip(realdata, tmp_path) -> tuple[Path, list[pydicom.Dataset]]:
    """Three copies of the Sunnybrook slice as a short-axis stack, one series per slice as in UK Biobank.

    Copy k is shifted k * 10 mm along the slice normal and has k * 1000 added to its pixels; members are
    written in a scrambled order."""
    originals = [pydicom.dcmread(p) for p in _dicom_files(realdata / SUNNYBROOK_DICOM)]
    orientation = np.asarray(originals[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    members = []
    for k in range(N_SLICES):
        series_uid = generate_uid()
        for i, original in enumerate(originals):
            dataset = pydicom.dcmread(io.BytesIO(_to_bytes(original)))  # a deep copy
            dataset.SeriesInstanceUID = series_uid
            dataset.SOPInstanceUID = generate_uid()
            position = np.asarray(original.ImagePositionPatient, dtype=float) + k * SLICE_GAP_MM * normal
            dataset.ImagePositionPatient = [round(float(v), 4) for v in position]
            pixels = original.pixel_array
            shifted = pixels.astype(np.int64) + k * 1000
            assert shifted.max() <= np.iinfo(pixels.dtype).max
            dataset.PixelData = shifted.astype(pixels.dtype).tobytes()
            members.append((f"slice{k}/IM-{i:04d}.dcm", _to_bytes(dataset)))
    order = np.random.default_rng(0).permutation(len(members))
    path = tmp_path / "1000001_20209_2_0.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in order:
            archive.writestr(*members[index])
    return path, originals


def test_ukb_zip_stack_shape_spacing_and_slice_order(ukb_style_zip):
    path, originals = ukb_style_zip
    cine = read_ukb_cmr_zip(path)
    assert cine.image.shape == (256, 256, N_SLICES, 20)
    assert cine.spacing_mm[0] == pytest.approx(1.367, abs=1e-3)
    assert cine.spacing_mm[1] == pytest.approx(1.367, abs=1e-3)
    assert cine.spacing_mm[2] == pytest.approx(SLICE_GAP_MM, abs=0.1)
    by_trigger = sorted(originals, key=lambda d: float(d.TriggerTime))
    times = np.array([float(d.TriggerTime) for d in by_trigger])
    assert cine.frame_interval_ms == pytest.approx(float(np.median(np.diff(times))), rel=1e-6)
    for z in range(N_SLICES):
        for k, dataset in enumerate(by_trigger):
            expected = dataset.pixel_array.astype(np.float32).T + z * 1000
            np.testing.assert_array_equal(cine.image[:, :, z, k], expected, err_msg=f"slice {z}, frame {k}")


def test_read_cmr_dispatches_a_zip(ukb_style_zip):
    path, _ = ukb_style_zip
    cine = read_cmr(path)
    assert cine.image.shape == (256, 256, N_SLICES, 20)
    assert Path(cine.source) == path


def test_ukb_zip_series_description_filter_that_matches_nothing(ukb_style_zip):
    path, _ = ukb_style_zip
    with pytest.raises(CmrReadError, match="no DICOM images"):
        read_ukb_cmr_zip(path, series_description="no such view")


def test_kit_phenotype_code_on_the_ukb_demo_masks(realdata):
    """label_volume_curves / phenotypes_from_masks on real segmentations against the pipeline's table."""
    import nibabel as nib
    import pandas as pd

    from ptacl_core.phenotypes import phenotypes_from_masks

    ed = read_nifti_labels(realdata / "cmr/ukb_demo/1/seg_sa_ED.nii.gz")
    es = read_nifti_labels(realdata / "cmr/ukb_demo/1/seg_sa_ES.nii.gz")
    spacing = nib.load(realdata / "cmr/ukb_demo/1/seg_sa_ED.nii.gz").header.get_zooms()[:3]
    result = phenotypes_from_masks(np.stack([ed, es], axis=-1), spacing, heart_rate_bpm=60.0)
    table = pd.read_csv(realdata / "cmr/ukb_demo/table_ventricular_volume.csv", index_col=0).loc[1]
    assert result["LVEDV_mL"] == pytest.approx(table["LVEDV (mL)"], abs=0.5)
    assert result["LVESV_mL"] == pytest.approx(table["LVESV (mL)"], abs=0.5)
    assert result["LVEF_pct"] == pytest.approx(table["LVEF (%)"], abs=0.5)
    assert result["LVM_g"] == pytest.approx(table["LVM (g)"], abs=0.5)
    assert result["RVEDV_mL"] == pytest.approx(table["RVEDV (mL)"], abs=0.5)
    assert result["RVEF_pct"] == pytest.approx(table["RVEF (%)"], abs=0.5)
