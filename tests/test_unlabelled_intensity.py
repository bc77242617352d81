"""The unlabelled-intensity map (engine/synthesis/unlabelled_intensity.py): fitted on real/generated pairs, it moves
the voxels outside the labels onto the real scans' intensities at the same distance from the labels, whatever each
scan's own scale, and leaves the labelled voxels alone."""
from __future__ import annotations

import numpy as np

from SemanticSynthLib.engine.synthesis.unlabelled_intensity import distance_from_labels, fit_unlabelled, kept_within, \
    map_unlabelled

SPACING = (2.0, 2.0, 2.0)


def _head(scalp: float, scale: float, seed: int, shape=(48, 48, 48)):
    """A labelled ball (mean 1 x scale) inside a head of radius 20 voxels whose scalp has `scalp` x the ball's mean,
    in air (0); with a little noise so that quantiles are spread."""
    z, y, x = np.indices(shape)
    r = np.sqrt((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2)
    labels = (r < 12).astype(np.int16) * 3
    rng = np.random.default_rng(seed)
    volume = np.where(r < 12, 1.0, np.where(r < 20, scalp, 0.0)) + 0.02 * rng.standard_normal(shape)
    return (np.clip(volume, 0, None) * scale).astype(np.float32), labels


def _same(v):
    return np.asarray(v, np.float32)


def test_the_map_moves_the_unlabelled_head_onto_the_real_one_whatever_the_scale():
    pairs = []
    for seed, real_scale in ((0, 1.0), (1, 3.0)):  # the second real scan is three times as bright: no matter
        real, labels = _head(0.6, 0.3 * real_scale, seed)
        generated, _ = _head(0.4, 0.3, 10 + seed)
        pairs.append((real, generated, labels))
    profile = fit_unlabelled(pairs, SPACING)
    assert profile["cases"] == 2 and profile["shells_mm"][0] == 0.0
    generated, labels = _head(0.4, 0.5, 20)  # another scale again at generation
    mapped = map_unlabelled(generated, labels > 0, SPACING, profile, _same, _same)
    z, y, x = np.indices(labels.shape)
    r = np.sqrt((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2)
    scalp, air = (r > 14) & (r < 18), r > 23
    brain_mean = mapped[labels > 0].mean()
    assert np.array_equal(mapped[labels > 0], generated[labels > 0])  # labelled voxels untouched
    assert abs(mapped[scalp].mean() / brain_mean - 0.6) < 0.05, mapped[scalp].mean() / brain_mean
    assert abs(generated[scalp].mean() / brain_mean - 0.4) < 0.05
    assert mapped[air].mean() / brain_mean < 0.05  # air stays air


def test_no_difference_maps_to_itself_and_degenerate_maps_pass_through():
    real, labels = _head(0.5, 1.0, 0)
    generated, _ = _head(0.5, 1.0, 0)
    profile = fit_unlabelled([(real, generated, labels)], SPACING)
    mapped = map_unlabelled(generated, labels > 0, SPACING, profile, _same, _same)
    assert np.abs(mapped - generated).max() < 1e-3 * generated.max()
    everywhere = np.ones(labels.shape, bool)
    assert np.array_equal(map_unlabelled(generated, everywhere, SPACING, profile, _same, _same), generated)


def test_distance_from_labels_is_in_millimetres():
    labelled = np.zeros((40, 40, 40), bool)
    labelled[:, :, :4] = True
    d = distance_from_labels(labelled, (1.0, 1.0, 3.0))  # every second voxel: 6 mm per coarse step; coarse 0-1 labelled
    assert d.shape == (20, 20, 20)
    assert d[0, 0, 0] == 0 and abs(d[0, 0, 5] - 24.0) < 1e-4


def test_kept_within_leaves_the_far_shells_as_generated():
    pairs = [(_head(0.6, 1.0, 0)[0], *_head(0.4, 1.0, 1))]
    profile = kept_within(fit_unlabelled(pairs, SPACING), 10.0)
    assert profile["within_mm"] == 10.0
    for edge, g, r in zip(profile["shells_mm"], profile["generated"], profile["real"]):
        assert (g == r) == (edge >= 10.0)
    generated, labels = _head(0.4, 1.0, 2)
    mapped = map_unlabelled(generated, labels > 0, SPACING, profile, _same, _same)
    z, y, x = np.indices(labels.shape)
    r = np.sqrt((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2)
    near, far = (r > 12.5) & (r < 13.5), r > 21  # 1 and 9+ voxels (2 and 18+ mm) from the labels
    assert mapped[near].mean() > 1.2 * generated[near].mean()
    assert np.abs(mapped[far] - generated[far]).max() < 1e-3
