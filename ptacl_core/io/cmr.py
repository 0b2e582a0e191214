"""Read cine CMR into ``(X, Y, Z, T)`` arrays with voxel spacing (mm) and frame interval (ms).

Sources: NIfTI (4-D, or a single slice over time as (X, Y, 1, T)); a DICOM series folder (slices ordered
by their position along the slice normal, frames by trigger time); a UK Biobank CMR zip (fields 20209 short
axis, 20208 long axis), where each slice of a stack is its own DICOM series.
"""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class CmrReadError(ValueError):
    """A CMR file or series that cannot be read as a cine; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Cine:
    """image: (X, Y, Z, T) float32; spacing_mm: (dx, dy, dz); frame_interval_ms: time between frames."""

    image: np.ndarray
    spacing_mm: tuple[float, float, float]
    frame_interval_ms: float
    source: str

    @property
    def n_frames(self) -> int:
        return self.image.shape[-1]


def _frame_interval_ms(value: float, unit: str) -> float:
    # NIfTI time units: many pipelines (UK Biobank's included) leave them 'unknown' and store seconds.
    if unit == "msec":
        return float(value)
    if unit == "usec":
        return float(value) / 1000.0
    if unit == "sec" or (unit == "unknown" and 0 < value < 1.0):
        return float(value) * 1000.0
    return float(value)


def read_nifti_cine(path: Path | str) -> Cine:
    """A 4-D NIfTI cine (X, Y, Z, T); pixdim[4] is the frame interval (ms, or s when its unit says so)."""
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises ImageFileError, OSError, EOFError on damaged files
        raise CmrReadError(path, f"not readable as NIfTI ({type(error).__name__}: {error})") from error
    if image.ndim != 4:
        raise CmrReadError(path, f"{image.ndim}-D NIfTI {image.shape}; a cine must be 4-D (X, Y, Z, T)")
    zooms = image.header.get_zooms()
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as error:
        raise CmrReadError(path, f"image data unreadable ({type(error).__name__}: {error})") from error
    if not np.all(np.isfinite(data)):
        raise CmrReadError(path, "non-finite voxels (NaN/inf)")
    time_unit = image.header.get_xyzt_units()[1]
    return Cine(data, tuple(float(z) for z in zooms[:3]), _frame_interval_ms(float(zooms[3]), time_unit), str(path))


def read_nifti_labels(path: Path | str) -> np.ndarray:
    """Integer label map (X, Y, Z) or (X, Y, Z, T) as uint8."""
    import nibabel as nib

    path = Path(path)
    try:
        data = np.asarray(nib.load(path).dataobj)
    except Exception as error:
        raise CmrReadError(path, f"not readable as NIfTI ({type(error).__name__}: {error})") from error
    if data.ndim not in (3, 4):
        raise CmrReadError(path, f"labels must be 3-D or 4-D, got shape {data.shape}")
    if not np.allclose(data, np.round(data)) or data.min() < 0 or data.max() > 255:
        raise CmrReadError(path, "labels are not small non-negative integers")
    return np.round(data).astype(np.uint8)


def _slice_normal(dataset) -> np.ndarray:
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])


def _assemble(datasets: list, source: Path, one_series: bool) -> Cine:
    """Order DICOM frames into (X, Y, Z, T): slices by position along the normal, frames by trigger time."""
    if not datasets:
        raise CmrReadError(source, "no DICOM images found")
    by_series = defaultdict(list)
    for dataset in datasets:
        by_series[str(getattr(dataset, "SeriesInstanceUID", ""))].append(dataset)
    if one_series and len(by_series) > 1:
        counts = ", ".join(f"{uid} ({len(items)} images)" for uid, items in by_series.items())
        raise CmrReadError(source, f"mixes {len(by_series)} series: {counts}; give one series per folder")
    missing = [t for t in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing") if t not in datasets[0]]
    if missing:
        raise CmrReadError(source, f"DICOM lacks {', '.join(missing)}: cannot place the slices")
    normal = _slice_normal(datasets[0])
    for dataset in datasets:
        if not np.allclose(_slice_normal(dataset), normal, atol=1e-3):
            raise CmrReadError(source, "images have different orientations: not one short-axis stack or cine")
    slices = defaultdict(list)
    for dataset in datasets:
        position = float(np.dot(np.asarray(dataset.ImagePositionPatient, dtype=float), normal))
        slices[round(position, 1)].append(dataset)
    positions = sorted(slices)
    frame_counts = {position: len(slices[position]) for position in positions}
    if len(set(frame_counts.values())) > 1:
        raise CmrReadError(source, f"slices have different frame counts {sorted(set(frame_counts.values()))}")
    shapes = {(int(d.Rows), int(d.Columns)) for d in datasets}
    if len(shapes) > 1:
        raise CmrReadError(source, f"images have different sizes {sorted(shapes)}")

    def trigger(dataset) -> float:
        value = getattr(dataset, "TriggerTime", None)
        return float(value) if value not in (None, "") else float(getattr(dataset, "InstanceNumber", 0))

    stack = []
    trigger_times = []
    for position in positions:
        frames = sorted(slices[position], key=trigger)
        trigger_times.append([trigger(d) for d in frames])
        pixels = []
        for dataset in frames:
            try:
                array = dataset.pixel_array.astype(np.float32)
            except Exception as error:  # truncated or compressed-without-codec pixel data
                name = getattr(dataset, "filename", None) or f"instance {getattr(dataset, 'InstanceNumber', '?')}"
                raise CmrReadError(source, f"{name}: pixel data unreadable ({type(error).__name__}: {error})") from error
            slope = float(getattr(dataset, "RescaleSlope", 1) or 1)
            intercept = float(getattr(dataset, "RescaleIntercept", 0) or 0)
            pixels.append((array * slope + intercept).T)  # DICOM rows are y: (rows, cols) -> (x, y)
        stack.append(np.stack(pixels, axis=-1))  # (X, Y, T)
    image = np.stack(stack, axis=2)  # (X, Y, Z, T)
    row_spacing, column_spacing = (float(v) for v in datasets[0].PixelSpacing)
    if len(positions) > 1:
        dz = float(np.median(np.diff(positions)))
    else:
        dz = float(getattr(datasets[0], "SpacingBetweenSlices", None) or getattr(datasets[0], "SliceThickness", 0) or 0)
    times = np.asarray(trigger_times[0])
    interval = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    return Cine(image, (column_spacing, row_spacing, dz), interval, str(source))


def _read_dicom_bytes(blob: bytes, name: str, source: Path):
    import pydicom

    try:
        return pydicom.dcmread(io.BytesIO(blob))
    except Exception as error:
        raise CmrReadError(source, f"{name}: not a readable DICOM file ({type(error).__name__})") from error


def read_dicom_series(folder: Path | str) -> Cine:
    """A folder holding one DICOM series (one slice over time, or a stack)."""
    import pydicom

    folder = Path(folder)
    if not folder.is_dir():
        raise CmrReadError(folder, "not a folder of DICOM files")
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            datasets.append(pydicom.dcmread(path))
        except pydicom.errors.InvalidDicomError:
            continue  # DICOMDIR side files, READMEs, thumbnails
    return _assemble(datasets, folder, one_series=True)


def read_ukb_cmr_zip(path: Path | str, series_description: str | None = None) -> Cine:
    """A UK Biobank CMR zip (20209 short axis, 20208 long axis): one DICOM series per slice.

    series_description: keep only series whose SeriesDescription contains it (e.g. "SAX" or "4ch") when a
    zip holds several views.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise CmrReadError(path, f"not a readable zip ({error})") from error
    with archive:
        datasets = [_read_dicom_bytes(archive.read(name), name, path) for name in archive.namelist()
                    if name.lower().endswith(".dcm")]
    # Derived series (e.g. "CINE_segmented_SAX_InlineVF", the scanner's own analysis) are not images to stack.
    datasets = [d for d in datasets if "inlinevf" not in str(getattr(d, "SeriesDescription", "")).lower()]
    if series_description:
        datasets = [d for d in datasets if series_description.lower() in str(getattr(d, "SeriesDescription", "")).lower()]
    normals = {tuple(np.round(_slice_normal(d), 2)) for d in datasets if "ImageOrientationPatient" in d}
    if len(normals) > 1:
        descriptions = sorted({str(getattr(d, "SeriesDescription", "?")) for d in datasets})
        raise CmrReadError(path, f"holds several views {descriptions}; choose one with series_description")
    return _assemble(datasets, path, one_series=False)


def read_cmr(path: Path | str, series_description: str | None = None) -> Cine:
    """Any supported cine: NIfTI file, UK Biobank zip (``series_description`` picks a view), or DICOM folder."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise CmrReadError(path, "file not found")
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_cine(path)
    if name.endswith(".zip"):
        return read_ukb_cmr_zip(path, series_description)
    if path.is_dir():
        return read_dicom_series(path)
    raise CmrReadError(path, "unknown CMR format; expected NIfTI (.nii/.nii.gz), a UK Biobank .zip or a DICOM folder")
