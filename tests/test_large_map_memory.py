"""A large map's full-resolution arrays are held once (issue 34 item 7: a 512^3 map's `generate` peaked at 3.46 GB):
the write's read-back compares the file slab by slab as it is decoded, the map's ids are counted in slabs, the
outside is set to background in place, the decoder's guide is painted per tile, the condition's class fractions are
counted in slabs. Each must still do exactly what the whole-volume version did. The 512^3 figure itself is
measured by scripts/benchmark.py --large (about a minute)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.engine.synthesis.generate import outside_to_background
from SemanticSynthLib.engine.volume import io
from SemanticSynthLib.engine.volume.labels import class_index_dtype, id_counts
from SemanticSynthLib.errors import SynthError


def _image(dtype, size=(19, 23, 37), seed=0) -> sitk.Image:
    """Odd sizes, a rotated direction, an origin and an anisotropic spacing."""
    values = (np.random.default_rng(seed).random(size[::-1]) * 200 - 50).astype(dtype)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((1.5, 2.0, 3.0))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    image.SetOrigin((3.0, -2.0, 7.5))
    return image


@pytest.fixture
def small_slabs(monkeypatch):
    monkeypatch.setattr(io, "SLAB_BYTES", 3000)  # several slabs even for these small images


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.float64])
def test_streamed_read_back_accepts_what_was_written(tmp_path, small_slabs, suffix, dtype):
    image = _image(dtype)
    out = io.write_volume(image, tmp_path / f"out{suffix}")
    assert io._nifti_reads_back_as(out, image) is True
    back = sitk.ReadImage(str(out))
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    assert back.GetDirection() == pytest.approx(image.GetDirection())
    assert back.GetOrigin() == pytest.approx(image.GetOrigin())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_streamed_read_back_catches_a_changed_voxel_a_cut_file_and_another_grid(tmp_path, small_slabs, suffix):
    image = _image(np.float32)
    out = io.write_volume(image, tmp_path / f"out{suffix}")
    changed = sitk.GetArrayFromImage(image)
    changed[30, 5, 3] += 1  # in the last slabs
    other = sitk.GetImageFromArray(changed)
    other.CopyInformation(image)
    assert io._nifti_reads_back_as(out, other) is False
    moved = sitk.Image(image)
    moved.SetOrigin((3.0, -2.0, 9.5))
    assert io._nifti_reads_back_as(out, moved) is False
    raw = out.read_bytes()
    for cut in (raw[:-3], raw[:len(raw) // 2]):  # the gzip trailer, or half the voxels, missing
        (tmp_path / f"cut{suffix}").write_bytes(cut)
        assert io._nifti_reads_back_as(tmp_path / f"cut{suffix}", image) is False


def test_a_corrupted_write_is_refused_and_the_previous_file_kept(tmp_path, small_slabs, monkeypatch):
    image = _image(np.float32)
    out = tmp_path / "out.nii.gz"
    out.write_bytes(b"the user's earlier result")
    write = sitk.WriteImage

    def corrupting(img, path, *args, **kwargs):  # a voxel of the data block changed on its way to the disk
        write(img, path, *args, **kwargs)
        data = bytearray(gzip.decompress(open(path, "rb").read()))
        data[-100] ^= 0x40
        with open(path, "wb") as f:
            f.write(gzip.compress(bytes(data)))

    monkeypatch.setattr(io.sitk, "WriteImage", corrupting)
    with pytest.raises(SynthError, match="did not read back as written"):
        io.write_volume(image, out, overwrite=True)
    assert out.read_bytes() == b"the user's earlier result"
    assert not list(tmp_path.glob(".partial-*"))


def test_a_vector_image_is_still_read_back_whole(tmp_path):
    field = sitk.Compose(*[_image(np.float32, seed=s) for s in range(3)])
    assert io._nifti_reads_back_as(tmp_path / "unused.nii.gz", field) is None
    out = io.write_volume(field, tmp_path / "field.nii.gz")
    assert np.array_equal(sitk.GetArrayViewFromImage(sitk.ReadImage(str(out))), sitk.GetArrayViewFromImage(field))


def test_nan_is_found_in_any_slab(tmp_path, small_slabs):
    values = sitk.GetArrayFromImage(_image(np.float32))
    values[-1, -1, -1] = np.nan
    image = sitk.GetImageFromArray(values)
    with pytest.raises(SynthError, match="NaN or infinite"):
        io.write_volume(image, tmp_path / "nan.nii.gz")


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_ids_counted_in_slabs_equal_one_count(dtype):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 40, (21, 17, 13)).astype(dtype)
    ids[-1, -1, -1] = 250  # the largest id only in the last slab
    ids[:4] = 0
    whole = np.bincount(ids.ravel().astype(np.int64))
    for slab in (1, 17 * 13, 5 * 17 * 13, ids.size):
        assert np.array_equal(id_counts(ids, slab), whole)
    assert np.array_equal(id_counts(ids.transpose(2, 1, 0), 50), whole)  # a view in (x, y, z) order
    with pytest.raises(ValueError):  # negative ids fail as np.bincount does
        id_counts(np.array([[1, -2], [0, 3]]))


def test_class_index_dtype_holds_every_class_and_the_spare_index():
    assert class_index_dtype(149) == np.uint8 and class_index_dtype(255) == np.uint8
    assert class_index_dtype(256) == np.int16 and class_index_dtype(40000) == np.int32


def test_outside_to_background_in_place_equals_the_whole_volume_version():
    image = _image(np.float32)
    labels = sitk.GetImageFromArray((np.random.default_rng(2).random(image.GetSize()[::-1]) * 3).astype(np.uint8))
    labels.CopyInformation(image)
    image.SetMetaData("SemanticSynth_calibration", "{}")
    expected = sitk.GetArrayFromImage(image)
    norm = {"kind": "percentile_scale", "scale": 300.0, "percentile": 99.5}
    expected[sitk.GetArrayViewFromImage(labels) == 0] = 0.0  # MRI's zero: no signal
    out = outside_to_background(image, labels, norm)
    assert np.array_equal(sitk.GetArrayViewFromImage(out), expected)
    assert out.GetMetaData("SemanticSynth_calibration") == "{}" and out.GetOrigin() == image.GetOrigin()
    ct = {"kind": "piecewise_linear", "source_knots": [-1024.0, 3071.0], "unit_knots": [0.0, 1.0]}
    out = outside_to_background(_image(np.float32), labels, ct)
    assert sitk.GetArrayViewFromImage(out)[sitk.GetArrayViewFromImage(labels) == 0].tolist() == \
        [-1024.0] * int((sitk.GetArrayViewFromImage(labels) == 0).sum())


def test_a_guide_painted_per_tile_decodes_as_the_packed_whole_guide():
    """sampling.decode given a function for each tile's guide equals decode given the whole guide, tile for tile."""
    import torch

    from SemanticSynthLib.engine.reporting.progress import Progress
    from SemanticSynthLib.engine.synthesis.sampling import DECODE_HALO, _tile_cores, decode
    from test_decode_tiles import FACTOR, _guide, _shipped_decoder

    model = _shipped_decoder()
    latent = torch.randn(1, 8, 10, 6, 40)
    guide = _guide((40, 24, 160))
    window = 12
    assert len(_tile_cores([(0, 10), (0, 6), (0, 40)], (10, 6, 40), window ** 3, DECODE_HALO)) > 1
    asked = []

    def guide_of(region):
        asked.append(region)
        return guide[(slice(None), slice(None), *region)].clone()

    whole = decode(model, latent, 2.0, window, False, Progress("none"), guide.clone(), FACTOR)
    tiled = decode(model, latent, 2.0, window, False, Progress("none"), guide_of, FACTOR)
    assert len(asked) > 1 and torch.equal(tiled, whole)


def test_packed_beside_equals_the_concatenated_space_to_depth():
    import torch

    from SemanticSynthLib.engine.model.packing import space_to_depth
    from SemanticSynthLib.engine.synthesis.sampling import packed_beside

    latent, guide = torch.randn(1, 8, 3, 5, 2), torch.randn(1, 2, 12, 20, 8)
    assert torch.equal(packed_beside(latent, guide, 4), torch.cat([latent, space_to_depth(guide, 4)], dim=1))


def test_class_fractions_counted_in_slabs_equal_one_count(monkeypatch):
    import torch
    import torch.nn.functional as F

    from SemanticSynthLib.engine.model import conditioning

    classes = torch.randint(0, 7, (2, 1, 12, 8, 16), dtype=torch.uint8)
    pooled = F.avg_pool3d(F.one_hot(classes[:, 0].long(), 7).permute(0, 4, 1, 2, 3).float(), 4)
    for chunk in (1, 4 ** 3 * 2 * 4, 2 ** 22):  # a latent x-slice at a time, two, all
        monkeypatch.setattr(conditioning, "FRACTION_CHUNK_VOXELS", chunk)
        assert torch.equal(conditioning.class_fractions(classes, 7, 4), pooled)


def test_layers_release_the_heap_only_where_asked(monkeypatch):
    """A large inference convolution gives the C heap back within releasing_layers() only: on an ordinary map the
    releases would only cost time (model/cpu_convolution.py)."""
    import torch
    from torch import nn

    from SemanticSynthLib.engine.model import cpu_convolution

    calls = []
    monkeypatch.setattr(cpu_convolution, "release_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(cpu_convolution, "RELEASE_BYTES", 4 * 8 * 10 ** 3)  # the output of the first layer below
    net = cpu_convolution.for_inference(nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.Conv3d(8, 1, 1)).eval())
    x = torch.randn(1, 1, 10, 10, 10)
    with torch.no_grad():
        plain = net(x)
        assert not calls
        with cpu_convolution.releasing_layers():
            released = net(x)
        assert len(calls) == 2  # both layers see the 8-channel map (as output or input)
        with cpu_convolution.releasing_layers(False):
            net(x)
        assert len(calls) == 2 and not cpu_convolution._releasing["on"]
    with cpu_convolution.releasing_layers():
        net(x)  # with gradients on (training), never
    assert len(calls) == 2 and torch.equal(plain, released)
