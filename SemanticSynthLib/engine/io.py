"""Volume input/output with SimpleITK, geometry kept exactly (size, spacing, origin, direction)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import SynthError

READABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_volume(path: str | os.PathLike) -> sitk.Image:
    """Read a NIfTI/NRRD/MHA file or a DICOM series folder as a 3D image."""
    path = Path(path)
    if not path.exists():
        raise SynthError(f"input not found: {path}; check the path")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise SynthError(f"no DICOM series in folder {path}; give a folder with one DICOM series")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            if _suffix(path) not in READABLE_SUFFIXES and _suffix(path) != ".dcm":
                raise SynthError(f"unsupported file type {path.name}; use NIfTI, NRRD, MHA or a DICOM folder")
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise SynthError(f"cannot read {path}: {str(exc).strip().splitlines()[-1]}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SynthError(f"{path.name} has {image.GetNumberOfComponentsPerPixel()} components per voxel; give a scalar volume")
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and min(image.GetSize()) <= 1):
        raise SynthError(f"{path.name} is a 2D image (size {image.GetSize()}); give a 3D volume")
    if image.GetDimension() != 3:
        raise SynthError(f"{path.name} has {image.GetDimension()} dimensions; give a 3D volume")
    return image


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early, before any work, if the output cannot or must not be written."""
    path = Path(path)
    if _suffix(path) not in WRITABLE_SUFFIXES:
        raise SynthError(f"output {path.name} has an unsupported type; use .nii.gz, .nii, .nrrd or .mha")
    if path.exists() and not overwrite:
        raise SynthError(f"output {path} exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SynthError(f"output folder {parent} does not exist; create it first")
    # Probe with a real file: permission bits say nothing for root or read-only mounts.
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=parent)
        os.close(fd)
        os.remove(probe)
    except OSError:
        raise SynthError(f"output folder {parent} is not writable; choose another output path") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_volume(image: sitk.Image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write atomically: a temp file in the same folder renamed into place, so no partial output remains."""
    path = check_output_path(path, overwrite)
    suffix = _suffix(path)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual permissions
    try:
        sitk.WriteImage(image, tmp, useCompression=True)
        os.replace(tmp, path)
    except RuntimeError as exc:
        os.remove(tmp)
        raise SynthError(f"cannot write {path}: {str(exc).strip().splitlines()[-1]}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


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
