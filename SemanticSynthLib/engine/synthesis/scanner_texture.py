"""Scanner texture: the voxel-scale texture of a real scan (acquisition noise, structure finer than a latent voxel)
that the decoder does not make, added back as correlated noise of the strength the training scans had.

Why: a decoder trained with reconstruction losses returns the smooth part of a scan. On brain-mri 0.10.0 a real T1's
fine texture (the scan minus its Gaussian smoothing of one voxel) was about 3x as strong as the generated volume's
in the scalp and 1.2x inside the brain, and its neighbouring voxels less correlated. Texture features that the
project did not train (the Fréchet Radiomics Distance's GLCM, run-length and wavelet features) read that as the
largest difference between generated and real heads (issue 33 and issue 34's FRD).

The profile is measured on training subjects (fit_profile): each subject's real scan and the generator's volume for
its label map, both in model units on the working grid. Voxels are grouped by the generated intensity (the only
thing known at generation time, for inside and outside the labels alike); per group, the fine-texture power the real
scans have beyond the generated ones' is the missing strength, apart for the labelled voxels and the rest (the
scalp, skull and air of a brain map are far rougher than brain tissue of the same intensity). Its correlation (one Gaussian width per axis) comes
from the missing part's lag-1 autocorrelation. At generation (add_texture), white noise from the seed is smoothed by
that width, scaled so that its fine texture has unit strength, and added with the strength of each voxel's group,
in model units, where the normalisation's curve and clipping apply (MRI stays non-negative).

It is zero-mean, so a label's calibrated mean does not move beyond the noise's own average. Packages without a
profile are unchanged.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from scipy import ndimage

FINE_SIGMA = 1.0        # voxels: the fine texture is a volume minus its Gaussian smoothing of this width
BINS = 16               # groups of generated intensity over model units [0, 1]
MIN_VOXELS = 200        # a group measured on fewer voxels takes its neighbours' strength
WIDTHS = np.round(np.arange(0.0, 2.01, 0.1), 2)  # candidate correlation widths (voxels)
REFERENCE_SHAPE = (48, 48, 48)  # the white-noise volume on which widths are related to autocorrelations
REGIONS = ("labels", "outside")  # strengths apart: a scalp voxel is rougher than brain of the same intensity
SLAB = 16               # planes of the first axis converted at a time
LEVELS = 1024           # steps of model units on which the strength is tabulated


def first_axis_slabs(n: int):
    """Slices of about SLAB planes covering range(n): this stage's arrays are converted a slab at a time, so that a
    large working grid (256^3 for a 512^3 map at 1 mm) holds no full-size temporaries."""
    for part in np.array_split(np.arange(n), max(1, n // SLAB)):
        yield slice(int(part[0]), int(part[-1]) + 1)


def fine_texture(values: np.ndarray) -> np.ndarray:
    """The fine texture of a volume: itself minus its Gaussian smoothing (sigma FINE_SIGMA voxels), float32."""
    values = np.asarray(values, np.float32)
    return values - ndimage.gaussian_filter(values, FINE_SIGMA)


def lag_one_products(texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per axis, the sum of products of neighbouring texture values where both lie in the mask."""
    inside = np.where(mask, texture, 0.0).astype(np.float64)
    out = []
    for axis in range(3):
        a = np.moveaxis(inside, axis, 0)
        out.append(float((a[1:] * a[:-1]).sum()))
    return np.asarray(out)


def _smoothed_noise(shape, widths, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    return ndimage.gaussian_filter(noise, [float(w) for w in widths]) if max(widths) > 0 else noise


def _width_table() -> np.ndarray:
    """Lag-1 autocorrelation of the fine texture of isotropically smoothed white noise, per candidate width: the
    curve through which a measured autocorrelation becomes a width."""
    rng = np.random.default_rng(0)
    table = []
    for w in WIDTHS:
        texture = fine_texture(_smoothed_noise(REFERENCE_SHAPE, (w, w, w), rng))
        core = texture[4:-4, 4:-4, 4:-4]
        table.append(float(np.mean(lag_one_products(core, np.ones_like(core, bool)) / np.sum(core.astype(np.float64) ** 2))))
    return np.asarray(table)


def width_for(autocorrelation: float) -> float:
    """The correlation width whose smoothed white noise has this fine-texture lag-1 autocorrelation (monotone)."""
    table = _width_table()
    return float(np.interp(autocorrelation, table, WIDTHS))


def texture_gain(widths, seed: int = 0) -> float:
    """The fine-texture standard deviation of white noise smoothed by `widths`: the noise is divided by it, so that
    the strength added is what the profile measured in fine-texture terms."""
    texture = fine_texture(_smoothed_noise(REFERENCE_SHAPE, widths, np.random.default_rng(seed)))
    return float(texture[4:-4, 4:-4, 4:-4].std())


def label_boundaries(labels: np.ndarray, margin: int) -> np.ndarray:
    """Voxels within `margin` voxels (26-neighbourhood steps) of a change of label, both sides; none for margin 0."""
    labels = np.asarray(labels)
    if margin <= 0:
        return np.zeros(labels.shape, bool)
    size = 2 * margin + 1
    return ndimage.maximum_filter(labels, size) != ndimage.minimum_filter(labels, size)


def fit_profile(pairs: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], margin: int = 0) -> dict:
    """The scanner-texture profile from (real, generated, labels) triples: real and generated in model units on
    the same grid, labels the label map on it (> 0: labelled; a boolean mask works too). The strengths are measured
    on every voxel of the grid but those within `margin` voxels of a change of label: at a boundary the real scan's
    fine texture is also its sharper edge, which noise does not restore (with margin 0, brain-mri 0.11.0's noise
    was strongest at the intensities of thin cortical CSF and cost its Dice). See the module docstring."""
    edges = np.linspace(0.0, 1.0, BINS + 1)
    power = {name: np.zeros((len(REGIONS), BINS)) for name in ("real", "generated", "count")}
    real_lag, generated_lag = np.zeros(3), np.zeros(3)
    cases = 0
    for real, generated, labels in pairs:
        fine_real, fine_generated = fine_texture(real), fine_texture(generated)
        groups = np.clip(np.digitize(generated, edges) - 1, 0, BINS - 1)
        labelled, measured = np.asarray(labels) > 0, ~label_boundaries(labels, margin)
        for r, inside in enumerate((labelled & measured, ~labelled & measured)):
            power["count"][r] += np.bincount(groups[inside], minlength=BINS)
            for name, texture in (("real", fine_real), ("generated", fine_generated)):
                power[name][r] += np.bincount(groups[inside], weights=texture[inside].astype(np.float64) ** 2,
                                              minlength=BINS)
        real_lag += lag_one_products(fine_real, measured)  # the same voxels as the strength
        generated_lag += lag_one_products(fine_generated, measured)
        cases += 1
    counts = power["count"]
    if cases == 0 or counts.sum() == 0:
        raise ValueError("no voxels to fit the scanner texture on")
    missing_power = np.maximum(power["real"] - power["generated"], 0.0)
    centres = (edges[:-1] + edges[1:]) / 2
    strength = {}
    for r, region in enumerate(REGIONS):
        measured = counts[r] >= MIN_VOXELS
        values = np.sqrt(missing_power[r] / np.maximum(counts[r], 1))
        # Thin groups take their neighbours'; a region never seen (a map that labels every voxel) gets none.
        values = np.interp(centres, centres[measured], values[measured]) if measured.any() else np.zeros(BINS)
        strength[region] = values.round(6).tolist()
    # The missing part's autocorrelation: covariances of independent parts add, so the real's minus the generated's.
    total = max(float(missing_power.sum()), 1e-12)
    autocorrelation = np.clip((real_lag - generated_lag) / total, -0.95, 0.95)
    widths = [round(width_for(float(a)), 3) for a in autocorrelation]
    return {"fine_sigma": FINE_SIGMA, "margin": int(margin), "bin_edges": edges.round(6).tolist(), "strength": strength,
            "widths": widths, "gain": round(texture_gain(widths), 6), "cases": cases,
            "voxels": int(counts.sum()), "autocorrelation": autocorrelation.round(4).tolist()}


def add_texture(values: np.ndarray, labelled: np.ndarray, profile: dict, seed: int, to_units: Callable,
                from_units: Callable) -> np.ndarray:
    """`values` (natural units: HU, scanner values; any axis order matching the profile's widths) with the scanner
    texture added, drawn from `seed`; `labelled`: the voxels the label map covers (the rest take the outside's
    strength). to_units/from_units: the package's normalisation and its inverse; the noise is
    added in model units and only the change is carried back, so voxels keep their calibrated values plus the noise
    (and the inverse's clipping: no negative MRI)."""
    values = np.array(values, np.float32)
    edges = np.asarray(profile["bin_edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    # The strength per region on LEVELS steps of model units, read by index: np.interp per voxel took 70 of the
    # 112 ms this stage took on a 128x128x96 working grid.
    levels = np.linspace(edges[0], edges[-1], LEVELS)
    table = np.stack([np.interp(levels, centres, np.asarray(profile["strength"][region])) for region in REGIONS])
    table = (table / float(profile["gain"])).astype(np.float32).ravel()
    scale = (LEVELS - 1) / (edges[-1] - edges[0])
    noise = _smoothed_noise(values.shape, profile["widths"], np.random.default_rng([int(seed), 33]))
    for planes in first_axis_slabs(values.shape[0]):  # no full-size temporaries beyond the noise
        v = values[planes]
        units = to_units(v)
        index = np.clip(np.rint((units - edges[0]) * scale), 0, LEVELS - 1).astype(np.intp)
        index += np.where(labelled[planes], 0, LEVELS)
        step = table[index] * noise[planes]
        v += from_units(units + step) - from_units(units)
    return values
