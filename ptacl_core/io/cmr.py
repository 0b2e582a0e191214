"""Read cine CMR into ``(X, Y, Z, T)`` arrays with voxel spacing (mm) and frame interval (ms).

Sources: NIfTI (4-D, or a single slice over time as (X, Y, 1, T)); a DICOM series folder (slices ordered
by their position along the slice normal, frames by trigger time); a UK Biobank CMR zip (fields 20209 short
axis, 20208 long axis), where each slice of a stack is its own DICOM series.
"""

from __future__ import annotations

import io
import zipfile
import zlib
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


# Bounds checked on the declared sizes before anything is allocated or decompressed. A UK Biobank short-axis cine
# is ~26 M voxels (208 x 210 x 12 slices x 50 frames); 80 M voxels is 320 MB as float32. Reading and preprocessing
# a cine at the limit peaks at ~1 GB of RSS (78 M int16 voxels measured: 0.97 GB). Raise it for bigger (e.g.
# 512 x 512 interpolated) stacks, with the memory that takes per worker.
MAX_CINE_VOXELS = 80_000_000
MAX_DICOM_FILE_BYTES = 256 * 1024 * 1024  # one DICOM image file (a multi-frame cine is well under this)
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024  # one DICOM image inside a UK Biobank zip is ~100 kB
MAX_ZIP_TOTAL_BYTES = 512 * 1024 * 1024  # a UK Biobank short-axis zip is ~60-100 MB uncompressed
PLAUSIBLE_PIXEL_MM = (0.1, 20.0)  # in-plane spacing
MAX_SLICE_GAP_MM = 100.0


def _frame_interval_ms(value: float, unit: str) -> float:
    """The frame interval in ms, or NaN when the header does not say it in a usable way.

    NIfTI time units: many pipelines (UK Biobank's included) leave them 'unknown' and store seconds; a value of
    1 with an unknown unit is the common placeholder of files that store no timing at all (ACDC-style 4-D
    files), so it is treated as unknown. The caller decides what an unknown interval becomes (preprocessing
    derives it from the paired ECG and flags it)."""
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        return float("nan")
    if unit == "msec":
        return value
    if unit == "usec":
        return value / 1000.0
    if unit == "sec" or (unit == "unknown" and value < 1.0):
        return value * 1000.0
    if unit == "unknown" and value == 1.0:  # said here, where the header is read; preprocessing's cycle check
        return float("nan")                  # (250-2,500 ms) would also catch it, from the frame count
    return value


def check_spacing(spacing_mm, source: Path | str) -> tuple[float, float, float]:
    """(dx, dy, dz) in mm, refused unless dx, dy are plausible pixel sizes and dz a finite non-negative gap."""
    dx, dy, dz = (float(v) for v in spacing_mm)
    low, high = PLAUSIBLE_PIXEL_MM
    for name, value in (("x", dx), ("y", dy)):
        if not (np.isfinite(value) and low <= value <= high):
            raise CmrReadError(source, f"pixel spacing {name} = {value:g} mm is implausible (expected {low:g}-{high:g} mm)")
    if not (np.isfinite(dz) and 0 <= dz <= MAX_SLICE_GAP_MM):
        raise CmrReadError(source, f"slice spacing {dz:g} mm is implausible (expected 0-{MAX_SLICE_GAP_MM:g} mm)")
    return dx, dy, dz


def _check_voxels(shape, source: Path | str) -> None:
    if any(int(n) <= 0 for n in shape):
        raise CmrReadError(source, f"image shape {tuple(int(n) for n in shape)} has an empty dimension")
    voxels = int(np.prod([int(n) for n in shape], dtype=np.int64))
    if voxels > MAX_CINE_VOXELS:
        raise CmrReadError(source, f"image of shape {tuple(int(n) for n in shape)} ({voxels / 1e6:.0f} M voxels) exceeds "
                                   f"the {MAX_CINE_VOXELS / 1e6:.0f} M-voxel limit; crop it first")


def read_nifti_cine(path: Path | str) -> Cine:
    """A 4-D NIfTI cine (X, Y, Z, T); pixdim[4] is the frame interval (ms, or s when its unit says so; NaN when
    the file does not say). The header is checked before any voxel is read: shape, size bound, spacing, type."""
    import nibabel as nib  # lazy: 0.4 s at import, needed only for NIfTI files
    from nibabel.openers import ImageOpener  # lazy: with nibabel

    path = Path(path)
    try:
        image = nib.load(path)
        with ImageOpener(path) as handle:  # nibabel silently turns a zero pixdim into 1: read the stored values
            raw = type(image.header).from_fileobj(handle, check=False)
    except Exception as error:  # nibabel raises ImageFileError, OSError, EOFError on damaged files
        raise CmrReadError(path, f"not readable as NIfTI ({type(error).__name__}: {error})") from error
    if image.ndim != 4:
        raise CmrReadError(path, f"{image.ndim}-D NIfTI {image.shape}; a cine must be 4-D (X, Y, Z, T)")
    _check_voxels(image.shape, path)
    if image.get_data_dtype().kind == "c":
        raise CmrReadError(path, f"complex-valued voxels ({image.get_data_dtype()}); store the magnitude image")
    slope = getattr(image.dataobj, "slope", 1.0)  # nibabel reads a 0 or non-finite scl_slope as 1 (the NIfTI rule)
    if slope is not None and float(slope) < 0:
        raise CmrReadError(path, f"scl_slope {float(slope):g} inverts the image; refused")
    # a negative pixdim is a converter's sign convention (nibabel reads its magnitude); 0, NaN and inf are not
    pixdim = [abs(float(v)) for v in raw["pixdim"][1:5]]
    spacing = check_spacing(pixdim[:3], path)
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as error:
        raise CmrReadError(path, f"image data unreadable ({type(error).__name__}: {error})") from error
    if not np.all(np.isfinite(data)):
        raise CmrReadError(path, "non-finite voxels (NaN/inf)")
    time_unit = image.header.get_xyzt_units()[1]
    return Cine(data, spacing, _frame_interval_ms(pixdim[3], time_unit), str(path))


def read_nifti_labels(path: Path | str) -> np.ndarray:
    """Integer label map (X, Y, Z) or (X, Y, Z, T) as uint8."""
    import nibabel as nib  # lazy: 0.4 s at import, needed only for NIfTI files

    path = Path(path)
    if path.exists() and not path.is_file():
        raise CmrReadError(path, "not a regular file")
    try:
        image = nib.load(path)
        _check_voxels(image.shape, path)
        data = np.asarray(image.dataobj)
    except CmrReadError:
        raise
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
    """Order DICOM frames into (X, Y, Z, T): slices by position along the normal, frames by trigger time. A header
    that lacks or garbles what placing them needs (rows, spacing, orientation, times) is a named error."""
    if not datasets:
        raise CmrReadError(source, "no DICOM images found")
    try:
        return _stack_frames(datasets, source, one_series)
    except CmrReadError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as error:  # a tag missing or malformed
        raise CmrReadError(source, f"DICOM header unusable for a cine ({type(error).__name__}: {error})") from error


def _refuse_duplicate_images(datasets: list, source: Path) -> None:
    """The same image (SOPInstanceUID) twice would be stacked as two frames: refused, naming it."""
    seen: dict[str, str] = {}
    for dataset in datasets:
        uid = str(getattr(dataset, "SOPInstanceUID", "") or "")
        name = Path(str(getattr(dataset, "filename", "") or "?")).name
        if uid and uid in seen:
            raise CmrReadError(source, f"image {uid} is stored twice ({seen[uid]}, {name}): ambiguous, refused")
        seen[uid] = name


def _rescale(dataset, source: Path) -> tuple[float, float]:
    """(slope, intercept) of an image's rescale (absent: 1, 0); a zero, negative or non-finite slope (it would blank
    or invert the image) or a non-finite intercept is refused."""
    slope, intercept = getattr(dataset, "RescaleSlope", None), getattr(dataset, "RescaleIntercept", None)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    if not (np.isfinite(slope) and slope > 0 and np.isfinite(intercept)):
        name = getattr(dataset, "filename", None) or f"instance {getattr(dataset, 'InstanceNumber', '?')}"
        raise CmrReadError(source, f"{name}: RescaleSlope {slope:g} / RescaleIntercept {intercept:g}; the slope must be "
                                   "positive and both finite")
    return slope, intercept


def _stack_frames(datasets: list, source: Path, one_series: bool) -> Cine:
    """``_assemble``'s work, on a non-empty list of datasets."""
    by_series = defaultdict(list)
    for dataset in datasets:
        by_series[str(getattr(dataset, "SeriesInstanceUID", ""))].append(dataset)
    if one_series and len(by_series) > 1:
        def described(uid: str, items: list) -> str:
            names = [Path(str(getattr(d, "filename", "") or "?")).name for d in items]
            files = f": {', '.join(names)}" if len(items) <= 3 else ""  # a stray file or two: name them
            return f"{uid or '(no SeriesInstanceUID: truncated or not an image?)'} ({len(items)} images{files})"
        counts = ", ".join(described(uid, items) for uid, items in sorted(by_series.items(), key=lambda kv: -len(kv[1])))
        raise CmrReadError(source, f"mixes {len(by_series)} series: {counts}; give one series per folder")
    _refuse_duplicate_images(datasets, source)
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
    frames_per_file = max(int(getattr(d, "NumberOfFrames", 1) or 1) for d in datasets)
    _check_voxels((*next(iter(shapes)), len(datasets) * frames_per_file), source)

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
            slope, intercept = _rescale(dataset, source)
            pixels.append((array * slope + intercept).T)  # DICOM rows are y: (rows, cols) -> (x, y)
        stack.append(np.stack(pixels, axis=-1))  # (X, Y, T)
    image = np.stack(stack, axis=2)  # (X, Y, Z, T)
    if not np.all(np.isfinite(image)):  # float pixel data can hold NaN/inf
        raise CmrReadError(source, "non-finite voxels (NaN/inf)")
    row_spacing, column_spacing = (float(v) for v in datasets[0].PixelSpacing)
    if len(positions) > 1:
        dz = float(np.median(np.diff(positions)))
    else:
        dz = float(getattr(datasets[0], "SpacingBetweenSlices", None) or getattr(datasets[0], "SliceThickness", 0) or 0)
    times = np.asarray(trigger_times[0])
    interval = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    if not (np.isfinite(interval) and interval > 0):
        interval = float("nan")  # unknown: preprocessing derives it from the paired ECG
    return Cine(image, check_spacing((column_spacing, row_spacing, dz), source), interval, str(source))


def _read_dicom_bytes(blob: bytes, name: str, source: Path):
    import pydicom  # lazy: 0.45 s at import, needed only for DICOM files

    try:
        return pydicom.dcmread(io.BytesIO(blob))
    except Exception as error:
        raise CmrReadError(source, f"{name}: not a readable DICOM file ({type(error).__name__})") from error


def read_dicom_series(folder: Path | str) -> Cine:
    """A folder holding one DICOM series (one slice over time, or a stack)."""
    import pydicom  # lazy: 0.45 s at import, needed only for DICOM files

    folder = Path(folder)
    if not folder.is_dir():
        raise CmrReadError(folder, "not a folder of DICOM files")
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):  # is_file: no FIFOs or devices
        if path.stat().st_size > MAX_DICOM_FILE_BYTES:
            raise CmrReadError(path, f"{path.stat().st_size / 1e6:.0f} MB is too large for one cine DICOM file")
        try:
            datasets.append(pydicom.dcmread(path, defer_size="1 MB"))  # pixel data read when decoded, not held
        except pydicom.errors.InvalidDicomError:
            continue  # DICOMDIR side files, READMEs, thumbnails
        except Exception as error:  # truncated in the header: named, not a mystery series
            raise CmrReadError(path, f"not a readable DICOM file ({type(error).__name__}: {error})") from error
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
        members = [info for info in archive.infolist() if info.filename.lower().endswith(".dcm")]
        for info in members:  # declared sizes, checked before anything is decompressed
            if info.file_size > MAX_ZIP_MEMBER_BYTES:
                raise CmrReadError(path, f"member {info.filename} declares {info.file_size >> 20} MiB uncompressed; "
                                         f"refused (a cine image is < {MAX_ZIP_MEMBER_BYTES >> 20} MiB)")
        total = sum(info.file_size for info in members)
        if total > MAX_ZIP_TOTAL_BYTES:
            raise CmrReadError(path, f"members declare {total >> 20} MiB uncompressed in all; refused "
                                     f"(over {MAX_ZIP_TOTAL_BYTES >> 20} MiB)")
        try:
            datasets = [_read_dicom_bytes(archive.read(info), info.filename, path) for info in members]
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:  # a damaged or lying zip
            raise CmrReadError(path, f"damaged zip member ({type(error).__name__}: {error})") from error
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
    if not (path.is_file() or path.is_dir()):  # a FIFO or device would block the reader forever
        raise CmrReadError(path, "not a regular file or folder")
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_cine(path)
    if name.endswith(".zip"):
        return read_ukb_cmr_zip(path, series_description)
    if path.is_dir():
        return read_dicom_series(path)
    raise CmrReadError(path, "unknown CMR format; expected NIfTI (.nii/.nii.gz), a UK Biobank .zip or a DICOM folder")
