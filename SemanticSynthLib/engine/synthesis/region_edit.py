"""Regenerate one region of an existing volume (generated or real) after its label map was edited.

The region is a mask, or the voxels whose labels differ from a previous label map. Only a box of latents around the
region (plus margin and context) is denoised, RePaint-style (Lugmayr et al. 2022): at the start and after every DDIM
step, the latents outside the region are replaced by the existing volume's own encoding, noised to that step, so the
new content grows into the unchanged surroundings. The box is decoded, and the result is blended into the existing
volume over the margin on the label map's own grid (weight 1 in the region, falling linearly to 0 at `margin` mm).
Every voxel further out is the existing volume's, bit for bit: the weight there is exactly 0 and those voxels are
copied, never recomputed.

Intensities: CT in HU, as the model's; MRI in the existing volume's own scale (its foreground percentile takes the
place of the model's training scale), so a real scan keeps its units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from ...errors import SynthError
from ..volume.geometry import same_grid
from ..volume.intensity import model_units, percentile_of_foreground
from ..volume.io import array_of
from .sampling import UNET_MULTIPLE
from .scanner_texture import fine_texture

DEFAULT_MARGIN_MM = 6.0
# Latent voxels of unchanged context denoised around the region's box: the U-Net sees the surroundings it must
# continue (4 latent voxels are 48 mm for abdomen-ct, 32 mm for brain-mri). Seam check (scripts/region_edit_check.py,
# the spleen grown by 2 voxels in a generated CT; mean |edit - full regeneration| in the margin and in the region, HU,
# with the linear blend of the first version): context 4: 9.9 and 10.0; 3: 11.5 and 13.6; 2: 14.0 and 17.9, and the
# step across the blend's outer edge 20.5 HU against the full regeneration's own 17.7 (a ring).
CONTEXT = 4
# Latent voxels decoded around the region and its margin, inside the denoised box: the decoder's own edge is kept off
# the voxels used; the full reach that makes tiles join exactly (sampling.DECODE_HALO, 9) is not needed, those voxels
# being new content anyway. Seam check with the squared blend (blend_weight), margin / region / edge step in HU:
# 2 latent voxels 7.5 / 9.2 / 18.1, 3: 7.3 / 9.1 / 17.9, 4: 6.7 / 9.1 / 17.2 (full regeneration's step 17.7). 2 keeps
# the decoded box of a ball of 10% of a 128^3 map at 24^3 of its 32^3 latents (28^3 with 4), which pays for encoding.
DECODE_CONTEXT = 2


@dataclass
class RegionEdit:
    """What to regenerate: `existing` on the label map's grid, `region` a bool array in SimpleITK's (z, y, x) order on
    that grid, `margin_mm` the blend width and `weight` the blend (blend_weight)."""
    existing: sitk.Image
    region: np.ndarray
    margin_mm: float
    weight: np.ndarray  # blend_weight on the label grid, (z, y, x)


def region_edit(label_map: sitk.Image, existing: sitk.Image, previous: sitk.Image | None = None,
                mask: sitk.Image | None = None, margin_mm: float = DEFAULT_MARGIN_MM) -> RegionEdit:
    """The edit, checked: EXISTING, and the previous label map or the mask, on the label map's grid; a region that
    is not empty."""
    if (previous is None) == (mask is None):
        raise SynthError("--edit needs exactly one of --previous-labels OLD (the map EXISTING was made from) or "
                         "--region MASK")
    for name, image in (("--edit", existing), ("--previous-labels", previous), ("--region", mask)):
        if image is not None and not same_grid(image, label_map):
            raise SynthError(f"{name} is not on the label map's grid (size, spacing, origin, direction); resample it "
                             "onto LABELS first")
    if existing.GetNumberOfComponentsPerPixel() != 1:
        raise SynthError("--edit must be a scalar volume (one value per voxel); give the CT or MRI volume")
    if not np.isfinite(array_of(existing)).all():
        raise SynthError("--edit holds NaN or infinite voxels; give a volume with finite values")
    if previous is not None:
        region = sitk.GetArrayFromImage(label_map) != sitk.GetArrayFromImage(previous)
        if not region.any():
            raise SynthError("the label map equals --previous-labels: no voxel changed, nothing to regenerate; edit "
                             "the labels or give --region MASK")
    else:
        region = sitk.GetArrayFromImage(mask) != 0
        if not region.any():
            raise SynthError("--region is empty (no non-zero voxel); give a mask of the voxels to regenerate")
    if not (np.isfinite(margin_mm) and margin_mm >= 0):
        raise SynthError("--margin must be a distance in mm, 0 or more")
    return RegionEdit(existing, region, float(margin_mm), blend_weight(region, label_map.GetSpacing(), margin_mm))


def blend_weight(region: np.ndarray, spacing_xyz, margin_mm: float) -> np.ndarray:
    """Per voxel of the label grid ((z, y, x) order): 1 in the region, (1 - distance / margin_mm)^2 around it, 0 from
    margin_mm on (float32).

    The square keeps more of the existing volume in the margin than a linear fall. Seam check (the spleen grown by
    2 voxels in a generated CT, scripts/region_edit_check.py, 4 latent voxels decoded around): mean |edit - full
    regeneration| in the margin 10.7 HU linear, 9.8 smoothstep, 6.7 squared, against 9.1 inside the region; the step across the margin's outer edge 14.7,
    15.4 and 17.2 HU against the full regeneration's own 17.7 (no ring)."""
    if margin_mm <= 0:
        return region.astype(np.float32)
    # The distance is needed only within the margin: computed on the region's box grown by the margin (and one voxel),
    # not on the whole map (0.15 s of an edit at 128^3).
    sampling = tuple(spacing_xyz)[::-1]
    reach = [int(np.ceil(margin_mm / s)) + 1 for s in sampling]
    hit = np.nonzero(region)
    box = tuple(slice(max(int(h.min()) - r, 0), min(int(h.max()) + 1 + r, n))
                for h, r, n in zip(hit, reach, region.shape))
    weight = np.zeros(region.shape, np.float32)
    distance = ndimage.distance_transform_edt(~region[box], sampling=sampling)
    weight[box] = np.clip(1.0 - distance / margin_mm, 0.0, 1.0) ** 2
    return weight


def edit_normalization(norm: dict, existing: sitk.Image) -> dict:
    """The normalization that reads and writes the existing volume's units: MRI scales by its own foreground
    percentile (a real scan is in its scanner's units); CT's HU are the model's."""
    if norm["kind"] != "percentile_scale":
        return norm
    return {**norm, "scale": percentile_of_foreground(array_of(existing), norm["percentile"])}


def latent_box(changed: np.ndarray, factor: int, context: int | None = None,
               multiple: int = UNET_MULTIPLE) -> tuple[slice, ...]:
    """The latent box ((x, y, z) slices) around the working-grid voxels `changed`, grown by `context` latent voxels
    (default CONTEXT), each side a multiple of `multiple` (the U-Net halves it twice) and inside the latent grid."""
    context = CONTEXT if context is None else context
    latent_shape = [n // factor for n in changed.shape]
    box = []
    for axis, size in enumerate(latent_shape):
        hit = np.flatnonzero(changed.any(axis=tuple(a for a in range(3) if a != axis)))
        start, stop = max(hit[0] // factor - context, 0), min(hit[-1] // factor + 1 + context, size)
        length = min(-(-(stop - start) // multiple) * multiple, size)
        start = min(start, size - length)
        box.append(slice(int(start), int(start + length)))
    return tuple(box)


def decoded_box(changed: np.ndarray, factor: int) -> tuple[slice, ...]:
    """The latent box ((x, y, z) slices) that is decoded: the changed voxels' own latents and DECODE_CONTEXT more on
    each side, inside the denoised box (latent_box, as CONTEXT >= DECODE_CONTEXT)."""
    return latent_box(changed, factor, DECODE_CONTEXT, multiple=1)


def latent_mask(changed: np.ndarray, factor: int) -> torch.Tensor:
    """1 on every latent voxel whose footprint touches a changed working voxel, grown by one latent voxel (the
    decoder's reach), else 0: (1, 1, x, y, z)."""
    t = torch.from_numpy(changed.astype(np.float32))[None, None]
    pooled = torch.nn.functional.max_pool3d(t, factor, factor)
    return torch.nn.functional.max_pool3d(pooled, 3, 1, 1)


class KnownLatents:
    """The RePaint replacement: outside `regenerate` (1 = new content) the latents are the existing volume's
    encoding `known`, noised to the sample's current noise level with fresh noise drawn from the seed."""

    def __init__(self, known: torch.Tensor, regenerate: torch.Tensor, seed: int):
        self.known, self.regenerate = known, regenerate.to(known.device)
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)

    def __call__(self, latent: torch.Tensor, scheduler, step: int) -> torch.Tensor:
        alpha = _alpha_after(scheduler, step)
        noise = torch.randn(self.known.shape, generator=self.generator).to(self.known.device)
        noised = alpha.sqrt() * self.known + (1 - alpha).sqrt() * noise
        return self.regenerate * latent + (1 - self.regenerate) * noised


def _alpha_after(scheduler, step: int) -> torch.Tensor:
    """alpha_bar of the sample after `step` DDIM steps, as MONAI's DDIMScheduler.step computes it (its previous
    timestep is t - T // n, which need not be the next of its timesteps)."""
    if step == 0:
        return scheduler.alphas_cumprod[int(scheduler.timesteps[0])].float()
    t = int(scheduler.timesteps[step - 1]) - scheduler.num_train_timesteps // scheduler.num_inference_steps
    return (scheduler.alphas_cumprod[t] if t >= 0 else scheduler.final_alpha_cumprod).float()


def known_units(existing: sitk.Image, grid: sitk.Image, norm: dict) -> np.ndarray:
    """The existing volume on the working grid in model units of `norm` (x, y, z); the grid's overhang past it
    replicates its edges, as generation's labels do."""
    from ..volume.working_image import values_on_grid

    if same_grid(existing, grid):  # the map is its own working grid: no resampling
        return model_units(array_of(existing), norm)
    return model_units(values_on_grid(existing, grid, extend=True), norm)


def changed_on_grid(edit: RegionEdit, label_map: sitk.Image, grid: sitk.Image, margin: bool = True) -> np.ndarray:
    """The working voxels ((x, y, z), bool) that touch the region and its margin (or the region alone): where the blend
    weight is above 0 (is 1), linearly resampled so that a region thinner than a working voxel still marks it."""
    marked = (edit.weight > 0) if margin else edit.region
    if same_grid(label_map, grid):  # the map is its own working grid: the mask itself, (x, y, z)
        changed = marked.transpose(2, 1, 0).copy()
    else:
        touched = sitk.GetImageFromArray(marked.astype(np.float32))
        touched.CopyInformation(label_map)
        on_grid = sitk.Resample(touched, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        changed = array_of(on_grid) > 0
    if not changed.any():
        raise SynthError("the region to regenerate lies outside the model's working grid; give a region inside LABELS")
    return changed


def grown(box: tuple[slice, ...], by: int, shape) -> tuple[slice, ...]:
    """A box grown by `by` voxels on each side, inside `shape`."""
    return tuple(slice(max(b.start - by, 0), min(b.stop + by, n)) for b, n in zip(box, shape))


def working_box(latent: tuple[slice, ...], factor: int) -> tuple[slice, ...]:
    """A latent box as working-grid slices."""
    return tuple(slice(b.start * factor, b.stop * factor) for b in latent)


def crop_of(inner: tuple[slice, ...], outer: tuple[slice, ...]) -> tuple[slice, ...]:
    """The (batch, channel, x, y, z) index of box `inner` inside a tensor that holds box `outer`."""
    return (slice(None), slice(None), *(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer)))


def sub_grid(grid: sitk.Image, box: tuple[slice, ...]) -> sitk.Image:
    """The grid of the working voxels in `box`: the same spacing and direction, its origin at the box's first voxel
    (the grid itself when the box is all of it)."""
    if all(b.start == 0 and b.stop == n for b, n in zip(box, grid.GetSize())):
        return grid
    out = sitk.Image([b.stop - b.start for b in box], grid.GetPixelID())
    out.SetSpacing(grid.GetSpacing())
    out.SetDirection(grid.GetDirection())
    out.SetOrigin(grid.TransformIndexToPhysicalPoint([b.start for b in box]))
    return out


# Latent voxels of context encoded around the box and dropped. The box's outer latents are the U-Net's context (and
# are noised at each step), the decoded ones lie CONTEXT - DECODE_CONTEXT inside: measured with 2, 1 and 0, the seam
# did not change (CT spleen grown by 2 voxels, margin / region / edge step in HU: 7.69 / 9.07 / 18.30 with 2,
# 7.69 / 8.98 / 18.33 with 0; brain ball of 10% of 128^3: the edited volume differed by at most 4.3 of a 586 scale),
# while 2 grew the encoded box of that ball from 28^3 to 32^3 latents, 1.5 times the encoder's work.
ENCODE_HALO = 0


def encoded(autoencoder, units: np.ndarray, classes: np.ndarray, priors, box: tuple[slice, ...], factor: int,
            device: torch.device, use_bf16: bool) -> torch.Tensor:
    """The existing volume's (unscaled) latents over latent box `box`: (1, C, x, y, z)."""
    from ..model.precision import encode_latent

    outer = grown(box, ENCODE_HALO, [n // factor for n in units.shape])
    cut = working_box(outer, factor)
    x = torch.from_numpy(np.ascontiguousarray(units[cut]))[None, None].to(device)
    guide = torch.from_numpy(priors.guide(classes[cut]))[None].to(device) if priors is not None else None
    with torch.no_grad():
        latent = encode_latent(autoencoder, x, use_bf16, guide)
    return latent[crop_of(box, outer)].contiguous()


def blend_box(edit: RegionEdit, label_map: sitk.Image) -> sitk.Image:
    """The part of the label map (a region of interest, its own origin) that holds every voxel of weight > 0: the
    only voxels the generated volume is needed on."""
    hit = np.nonzero(edit.weight > 0)  # (z, y, x)
    index = [int(h.min()) for h in hit][::-1]
    size = [int(h.max()) - int(h.min()) + 1 for h in hit][::-1]
    return sitk.RegionOfInterest(label_map, size, index)


def matched_noise(edit: RegionEdit, label_map: sitk.Image, generated: sitk.Image, box: sitk.Image,
                  seed: int) -> tuple[sitk.Image, float]:
    """`generated` with noise added so that its fine texture in the region is as strong as the existing volume's
    around it: a real scan has quantum noise and fine structure the decoder does not make, and new tissue without it
    looks painted on. Where the existing volume is no rougher than the generated one (another generated volume), no
    noise is added. The noise is white, smoothed by a Gaussian of half a voxel (CT noise is correlated over about a
    voxel), scaled to the missing std, zero-mean over the region, and drawn from the seed. Returns the image and the
    std added."""
    start = label_map.TransformPhysicalPointToIndex(box.GetOrigin())
    roi = tuple(slice(a, a + n) for a, n in zip(start[::-1], box.GetSize()[::-1]))
    weight, region = edit.weight[roi], edit.region[roi]
    existing = sitk.GetArrayFromImage(edit.existing)[roi]
    new = sitk.GetArrayFromImage(generated).astype(np.float64)
    around = (weight == 0) & (ndimage.binary_dilation(weight > 0, iterations=3))
    if around.sum() < 30 or region.sum() < 30:
        return generated, 0.0
    target = float(fine_texture(existing)[around].std())
    present = float(fine_texture(new)[region].std())
    missing = float(np.sqrt(max(target ** 2 - present ** 2, 0.0)))
    if missing == 0.0:
        return generated, 0.0
    noise = ndimage.gaussian_filter(np.random.default_rng([int(seed), 35]).standard_normal(new.shape), 0.5)
    noise *= missing / max(float(noise.std()), 1e-12)
    noise -= noise[region].mean()  # the region's mean stays the calibrated one (a lesion at its given intensity)
    out = sitk.GetImageFromArray((new + noise).astype(np.float32))
    out.CopyInformation(generated)
    return out, missing


def blend_edit(edit: RegionEdit, label_map: sitk.Image, generated: sitk.Image, box: sitk.Image) -> sitk.Image:
    """The existing volume with `generated` (on `box`, a region of the label grid) blended in by the weight; voxels
    of weight 0 are copied from the existing volume unchanged, in its own voxel type (integers rounded and clipped
    to the type). The existing volume's metadata is kept.

    Measured against a detail-keeping blend, existing + w (generated - reconstruction) with the existing volume's
    own latents decoded beside (the spleen grown by 2 voxels, docs/region_edit/report.md): mean |edit - full
    regeneration| in the margin 23.6 HU against 10.7 HU here; the margin's latents are new content either way (one
    latent voxel is 12 mm of CT), so the reconstruction added nothing but its own error."""
    values = sitk.GetArrayFromImage(edit.existing)
    out = values.copy()
    start = label_map.TransformPhysicalPointToIndex(box.GetOrigin())
    roi = tuple(slice(a, a + n) for a, n in zip(start[::-1], box.GetSize()[::-1]))
    weight, new = edit.weight[roi], sitk.GetArrayFromImage(generated).astype(np.float64)
    inside = weight > 0
    mixed = weight[inside] * new[inside] + (1 - weight[inside]) * values[roi][inside].astype(np.float64)
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        mixed = np.clip(np.round(mixed), info.min, info.max)
    part = out[roi]
    part[inside] = mixed.astype(values.dtype)
    out[roi] = part
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(edit.existing)
    for key in edit.existing.GetMetaDataKeys():
        image.SetMetaData(key, edit.existing.GetMetaData(key))
    return image


MIN_VOXELS = 30  # a label needs this many unchanged voxels in EXISTING for its own mean to be its prior


def existing_priors(edit: RegionEdit, label_map: sitk.Image, package, mapping: dict | None, modality: str) -> dict:
    """Priors overrides (model label id -> {"mean", "range"}, natural units) read from the existing volume itself:
    each label's mean over its voxels outside the region and margin. A real scan is another patient's: its liver or
    bone is not at the training data's HU, and the regenerated region should continue this scan, not the training
    set. MRI means are taken relative to the scan's own reference tissue (white matter), as MRI priors are; without
    that tissue in the map, none are read."""
    from ..model.package_metadata import for_modality
    from ..volume.modalities import modality_of

    norm = package.normalization(modality)
    entry = modality_of(norm)
    ids = sitk.GetArrayViewFromImage(label_map).astype(np.int64)
    kept = edit.weight == 0
    model_ids = ids[kept]
    if mapping:
        lookup = np.arange(max(int(model_ids.max()), max(mapping)) + 1)
        for source, target in mapping.items():
            lookup[source] = target
        model_ids = lookup[model_ids]
    values = sitk.GetArrayViewFromImage(edit.existing)[kept].astype(np.float64)
    known = {lab.id for lab in package.labels.labels}
    size = int(model_ids.max()) + 1
    counts = np.bincount(model_ids, minlength=size)
    sums = np.bincount(model_ids, weights=values, minlength=size)
    scale = 1.0
    if entry.prior_kind != "absolute":
        reference = for_modality(package.metadata.get("priors", {}), modality).get("reference", {}).get("ids", [])
        ref = [i for i in reference if i < size and counts[i] > 0]
        if not ref or counts[ref].sum() < MIN_VOXELS:
            return {}
        scale = float(sums[ref].sum() / counts[ref].sum())
    out = {}
    for label_id in np.flatnonzero(counts >= MIN_VOXELS):
        if label_id in known:
            mean = float(sums[label_id] / counts[label_id]) / scale
            out[int(label_id)] = {"mean": mean, "range": [float(v) for v in entry.around(mean)]}
    return out
