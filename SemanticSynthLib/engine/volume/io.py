"""Volume input/output with SimpleITK, geometry kept exactly (size, spacing, origin, direction).

Reading is strict: a truncated or corrupt file, NaN/Inf voxels, a non-orthonormal direction, or a DICOM
folder with several series are errors, whatever the reader would have let through (SimpleITK reads a
truncated .nii.gz with zeros for the missing part and turns NaN into 0, so NIfTI files are also
decoded with nibabel). Writing goes to a temp file beside the target, is read back and compared with
what was meant to be written (SimpleITK does not raise on a failed NIfTI write), and only then renamed
into place: a failed write leaves the previous file untouched.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import re
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import SynthError
from .atomic import commit_files, temp_file_beside
from .memory import available_bytes
from .outputs import writable_folder

sitk.ProcessObject_SetGlobalWarningDisplay(False)  # ITK's multi-line warnings are not for users; errors are ours

READABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DIRECTION_TOLERANCE = 1e-3  # NIfTI keeps the direction in float32; shears and scalings are far larger


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else exc.__class__.__name__


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def dicom_series(folder: Path) -> list[str]:
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _read_dicom(path: Path, series: str | None) -> sitk.Image:
    found = dicom_series(path)
    if not found:
        raise SynthError(f"no DICOM series in folder {path}; give a folder with one DICOM series")
    if series is None and len(found) > 1:
        listed = ", ".join(f"{uid} ({len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), uid))} files)"
                           for uid in found)
        raise SynthError(f"folder {path} holds {len(found)} DICOM series: {listed}; choose one with --series UID")
    if series is not None and series not in found:
        raise SynthError(f"DICOM series {series} is not in folder {path}; it holds: {', '.join(found)}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series or found[0]))
    return reader.Execute()


def _nifti_voxels(path: Path) -> np.ndarray:
    """The whole NIfTI data block decoded by nibabel, which notices a short or corrupt file."""
    import nibabel as nib

    try:
        return np.asanyarray(nib.load(str(path)).dataobj)
    except (EOFError, OSError, ValueError, zlib.error, MemoryError) as exc:
        raise SynthError(f"{path.name} is truncated or corrupt ({_first_line(exc)}); re-export or copy the file again") from None
    except Exception as exc:  # nibabel's ImageFileError and friends
        raise SynthError(f"{path.name} is not a readable NIfTI file ({_last_line(exc)}); re-export it") from None


def _nonfinite(values: np.ndarray) -> int:
    """NaN and infinite voxels, counted a slab at a time (0 for integer types)."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return 0
    if values.ndim < 2:
        return int(np.count_nonzero(~np.isfinite(values)))
    return sum(int(np.count_nonzero(~np.isfinite(values[z]))) for z in _z_slabs(values))


def _check_values(path: Path, image: sitk.Image, raw: np.ndarray | None) -> None:
    """NaN/Inf anywhere is an error; for NIfTI the decoded file data is checked, since SimpleITK hides them."""
    values = raw if raw is not None else sitk.GetArrayViewFromImage(image)
    if np.asarray(values).dtype.kind in "fc":
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise SynthError(f"{path.name} has {bad} NaN or infinite voxels; replace them (e.g. by 0) and try again")


def _zero_spacing(name: str, spacing) -> SynthError:
    shown = "x".join(f"{float(v):g}" for v in spacing)
    return SynthError(f"{name} has a zero voxel spacing ({shown} mm) in its header; set the real voxel size (mm) in the "
                      "header, or re-export the file")


def _singular_direction(name: str, direction) -> SynthError:
    if np.any(np.asarray(direction, float)):
        what = "a singular direction matrix (determinant 0: an axis is zero or two axes are parallel)"
    else:
        what = "an all-zero direction matrix"
    return SynthError(f"{name} has {what} in its header; set the axes' directions in the header, or re-export the file")


def _is_singular(direction: np.ndarray) -> bool:
    """Determinant 0 within float32 rounding (NIfTI keeps the direction in float32), for axes of any length."""
    lengths = np.linalg.norm(direction, axis=0)
    return bool(np.any(lengths == 0) or abs(np.linalg.det(direction / lengths)) < DIRECTION_TOLERANCE)


def _check_geometry(path: Path, image: sitk.Image) -> None:
    spacing, origin = np.array(image.GetSpacing()), np.array(image.GetOrigin())
    if np.all(np.isfinite(spacing)) and np.any(spacing == 0):
        raise _zero_spacing(path.name, spacing)
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        raise SynthError(f"{path.name} has an invalid voxel spacing {tuple(spacing)}; fix the file's header")
    if not np.all(np.isfinite(origin)):
        raise SynthError(f"{path.name} has an invalid origin {tuple(origin)}; fix the file's header")
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if np.all(np.isfinite(direction)) and _is_singular(direction):
        raise _singular_direction(path.name, direction)
    if not np.all(np.isfinite(direction)) or np.abs(direction.T @ direction - np.eye(3)).max() > DIRECTION_TOLERANCE:
        raise SynthError(f"{path.name} has a non-orthonormal direction matrix (sheared or scaled axes); "
                         "resample it onto a grid with orthonormal axes first")


def _nifti_header(path: Path) -> dict | None:
    """The raw NIfTI-1 header fields ITK reads the geometry from (nibabel's header object replaces a zero pixdim
    by 1, and so does ITK, silently: the spacing read is not the file's). None for NIfTI-2 or an unreadable header."""
    try:
        with (gzip.open(path, "rb") if _suffix(path) == ".nii.gz" else open(path, "rb")) as f:
            head = f.read(348)
    except (OSError, EOFError, zlib.error):
        return None  # reading the volume reports it
    for endian in "<>":
        if len(head) == 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            return {"dim": struct.unpack(endian + "8h", head[40:56]), "pixdim": struct.unpack(endian + "8f", head[76:108]),
                    "sform_code": struct.unpack(endian + "h", head[254:256])[0],
                    "srow": np.array(struct.unpack(endian + "12f", head[280:328])).reshape(3, 4)}
    return None


def _check_nifti_header(path: Path) -> None:
    """A zero spacing (pixdim) or a zero or singular sform, said as such before ITK reads it."""
    header = _nifti_header(path)
    if header is None:
        return
    spatial = max(0, min(3, header["dim"][0]))
    pixdim = np.array(header["pixdim"][1:1 + spatial])
    if np.all(np.isfinite(pixdim)) and np.any(pixdim == 0):
        raise _zero_spacing(path.name, pixdim)
    if header["sform_code"] > 0 and spatial == 3:
        matrix = header["srow"][:, :3]
        if np.all(np.isfinite(matrix)) and _is_singular(matrix):
            raise _singular_direction(path.name, matrix)


def _geometry_read_error(path: Path, text: str) -> SynthError | None:
    """ITK's refusals of a zero spacing or a singular direction, said as such (ITK's text names neither plainly)."""
    spacing = re.search(r"Zero-valued spacing.*?to \[([^\]]*)\]", text, re.S)
    if spacing:
        return _zero_spacing(path.name, [float(v) for v in spacing.group(1).replace(",", " ").split()])
    direction = re.search(r"Bad direction, determinant is 0.*? to ((?:\s*[-+0-9.eE]+){9})", text, re.S)
    if direction:
        values = [float(v) for v in direction.group(1).split()]
        return _singular_direction(path.name, values if len(values) == 9 else [1.0])
    if "No orthonormal definition found" in text:
        return SynthError(f"{path.name} has a zero, singular or sheared orientation (sform/qform) in its NIfTI header; "
                          "set the axes' directions and voxel size in the header, or re-export the file")
    return None


def _check_size_before_reading(path: Path) -> None:
    """From the header alone: refuse a file whose voxels (read twice for NIfTI) would not fit in memory."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    voxels = int(np.prod(np.array(reader.GetSize(), dtype=object)))
    item = np.dtype(sitk.extra._get_numpy_dtype(sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()))).itemsize
    need = voxels * item * (2 if _suffix(path) in NIFTI_SUFFIXES else 1)
    free = available_bytes()
    if free is not None and need > free:
        raise SynthError(f"{path.name} has {'x'.join(map(str, reader.GetSize()))} voxels, about {need / 1e9:.1f} GB to read, "
                         f"and {max(free, 0) / 1e9:.1f} GB is available; crop or downsample it first")


def read_volume(path: str | os.PathLike, series: str | None = None) -> sitk.Image:
    """Read a NIfTI/NRRD/MHA file or a DICOM series folder as a 3D scalar image, strictly (see above)."""
    path = Path(path)
    if not path.exists():
        raise SynthError(f"input not found: {path}; check the path")
    raw = None
    if path.is_file():
        if series is not None:
            raise SynthError(f"--series is for DICOM folders, and {path.name} is a file; leave it out")
        if _suffix(path) not in READABLE_SUFFIXES and _suffix(path) != ".dcm":
            raise SynthError(f"unsupported file type {path.name}; use NIfTI, NRRD, MHA or a DICOM folder")
    if path.is_file() and _suffix(path) in NIFTI_SUFFIXES:
        _check_nifti_header(path)
    try:
        with _native_stderr_captured() as noise:  # MetaImage and GDCM report problems on fd 2 only
            if path.is_file():
                _check_size_before_reading(path)
            image = _read_dicom(path, series) if path.is_dir() else sitk.ReadImage(str(path))
    except RuntimeError as exc:
        if "Unable to determine ImageIO reader" in str(exc):
            raise SynthError(f"{path.name} is not a readable NIfTI, NRRD or MHA file (empty, or another format); "
                             "check that it is the volume you meant") from None
        geometry = _geometry_read_error(path, f"{exc}\n{noise['text']}")
        if geometry is not None:
            raise geometry from None
        reason = next((line.strip() for line in noise["text"].splitlines() if line.strip()), "") or _last_line(exc)
        reason = reason.removeprefix("sitk::ERROR: ")
        raise SynthError(f"cannot read {path}: {reason}; check that it is a complete, uncorrupted volume") from None
    except MemoryError:
        raise SynthError(f"{path.name} is too large to read into memory; crop it first") from None
    try:
        if path.is_file() and _suffix(path) in NIFTI_SUFFIXES:
            raw = _nifti_voxels(path)
    except MemoryError:
        raise SynthError(f"{path.name} is too large to read into memory; crop it first") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SynthError(f"{path.name} has {image.GetNumberOfComponentsPerPixel()} components per voxel; give a scalar volume")
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and min(image.GetSize()) <= 1):
        raise SynthError(f"{path.name} is a 2D image (size {image.GetSize()}); give a 3D volume")
    if image.GetDimension() != 3:
        raise SynthError(f"{path.name} has {image.GetDimension()} dimensions; give a 3D volume")
    _check_geometry(path, image)
    _check_values(path, image, raw)
    return image


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early, before any work, if the output cannot or must not be written."""
    path = Path(path)
    if _suffix(path) not in WRITABLE_SUFFIXES:
        raise SynthError(f"output {path.name} has an unsupported type; use .nii.gz, .nii, .nrrd or .mha")
    if path.is_dir():
        raise SynthError(f"output {path} is a folder; give a file name such as {path / 'out.nii.gz'}")
    if path.exists() and not overwrite:
        raise SynthError(f"output {path} exists; pass --overwrite to replace it, or choose another output path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SynthError(f"output folder {parent} does not exist; create it first")
    writable_folder(parent)
    return path


@contextlib.contextmanager
def _native_stderr_captured():
    """C libraries (niftilib's 'NWAD: wrote only ...') print to fd 2; collect that instead of showing it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        captured = {"text": ""}
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured["text"] = sink.read().decode("utf-8", "replace")


def _components(a) -> int:
    """Components per voxel of an image or of a file reader after ReadImageInformation."""
    return a.GetNumberOfComponentsPerPixel() if isinstance(a, sitk.Image) else a.GetNumberOfComponents()


def _same_geometry(a, b: sitk.Image) -> bool:
    """`a`: an image, or a file reader whose header was read (ReadImageInformation)."""
    return (tuple(a.GetSize()) == tuple(b.GetSize()) and a.GetPixelID() == b.GetPixelID()
            and _components(a) == _components(b)
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-5, atol=1e-6)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=1e-5, atol=1e-4)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5))


SLAB_BYTES = 8 * 2 ** 20  # voxels checked at a time, read back or searched for NaN: the full volume is never copied


def _z_slabs(values: np.ndarray):
    """Slices of the first (slowest, z) axis of a (z, y, x) array, each about SLAB_BYTES."""
    per_slice = max(1, values[:1].nbytes)
    step = max(1, SLAB_BYTES // per_slice)
    for start in range(0, values.shape[0], step):
        yield slice(start, min(start + step, values.shape[0]))


def _nifti_reads_back_as(tmp: Path, image: sitk.Image) -> bool | None:
    """A scalar 3D NIfTI file's voxels compared with the image's as the file's data block is decoded, slab by slab
    of z (the file's slowest axis; its x runs fastest, as in the image's buffer): no second full-size copy. The
    header (geometry, voxel type) is SimpleITK's reading of it. None where this does not apply (a vector image, or
    voxels scaled by the header), for the whole-file comparison."""
    import nibabel as nib

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(tmp))
    try:
        reader.ReadImageInformation()
        proxy = nib.load(str(tmp)).dataobj
    except Exception:  # ITK's RuntimeError, nibabel's ImageFileError and friends: not a readable file
        return False
    if not _same_geometry(reader, image) or tuple(proxy.shape) != tuple(image.GetSize()):
        return False
    expected = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    dtype = np.dtype(proxy.dtype)
    if (getattr(proxy, "order", "F") != "F" or float(proxy.slope) != 1.0 or float(proxy.inter) != 0.0
            or dtype.kind != expected.dtype.kind or dtype.itemsize != expected.itemsize):
        return None
    try:
        # Python's own gzip reader, whatever nibabel would pick: it checks the stream's CRC and length at its end.
        with (gzip.open(tmp, "rb") if tmp.name.endswith(".gz") else open(tmp, "rb")) as f:
            f.seek(int(proxy.offset))
            for z in _z_slabs(expected):
                part = expected[z]
                data = f.read(part.size * dtype.itemsize)
                if len(data) != part.size * dtype.itemsize:
                    return False  # short: a truncated file
                if not np.array_equal(np.frombuffer(data, dtype).reshape(part.shape), part, equal_nan=True):
                    return False
            f.read(1)  # a gzip stream's end: its CRC and length are checked here, and raise if wrong or cut off
    except (OSError, EOFError, ValueError, zlib.error):
        return False
    return True


def _reads_back_as(tmp: Path, suffix: str, image: sitk.Image) -> bool:
    if suffix in NIFTI_SUFFIXES:
        streamed = _nifti_reads_back_as(tmp, image)
        if streamed is not None:
            return streamed
    try:
        back = sitk.ReadImage(str(tmp))
        if suffix in NIFTI_SUFFIXES:
            _nifti_voxels(tmp)  # completeness: SimpleITK fills a short NIfTI with zeros
    except (RuntimeError, SynthError):
        return False
    return _same_geometry(back, image) and np.array_equal(sitk.GetArrayViewFromImage(back),
                                                          sitk.GetArrayViewFromImage(image), equal_nan=True)


def _write_checked(image: sitk.Image, tmp: Path, path: Path) -> None:
    """Write `image` to the temp file `tmp` (destined for `path`) and read it back; a SynthError if it differs."""
    if _nonfinite(sitk.GetArrayViewFromImage(image)):
        raise SynthError(f"refusing to write {path}: the result has NaN or infinite voxels; the model package or "
                         "input is broken")
    try:
        with _native_stderr_captured():
            sitk.WriteImage(image, str(tmp), useCompression=True)
    except RuntimeError as exc:
        raise SynthError(f"cannot write {path}: {_last_line(exc)} (disk full?); any previous file is unchanged") from None
    if not _reads_back_as(tmp, _suffix(path), image):
        raise SynthError(f"cannot write {path}: the file did not read back as written (disk full?); "
                         "any previous file is unchanged, free space or choose another output path")


def write_volumes(items, overwrite: bool = False) -> list[Path]:
    """Write several volumes as one output: each to a temp file beside its target, read back and compared,
    then all renamed into place together. On any failure nothing changes, previous files included."""
    items = [(image, check_output_path(path, overwrite)) for image, path in items]
    with contextlib.ExitStack() as stack:
        staged = []
        for image, path in items:
            tmp = stack.enter_context(temp_file_beside(path, _suffix(path)))
            _write_checked(image, tmp, path)
            staged.append((tmp, path))
        commit_files(staged)
    return [path for _, path in items]


def write_volume(image: sitk.Image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write to a temp file beside the target, read it back, compare, rename: all of it, or nothing."""
    return write_volumes([(image, path)], overwrite)[0]


def array_of(image: sitk.Image) -> np.ndarray:
    """Voxel array in (x, y, z) index order, matching ITK's index and the size tuple."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))


def image_like(array_xyz: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """An image with the reference's exact grid holding array_xyz (x, y, z order)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array_xyz).transpose(2, 1, 0)))
    image.CopyInformation(reference)
    return image


def lps_array(image: sitk.Image):
    """Voxels reoriented so x runs to the patient's left, y to posterior, z to superior (x, y, z order),
    and the spacing in that order: for pictures in standard planes whatever the file's axes."""
    oriented = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(oriented).transpose(2, 1, 0), oriented.GetSpacing()
