"""Colour layers in the slice views: a translation's displacement magnitude (mm) and a generation's per-voxel
standard deviation across K samples (the uncertainty, in the modality's units).

Nothing here computes or converts: the magnitude is the engine's (`engine.field_magnitude`), the field leaves the
scene through the bridge's `export_transform` and the magnitude comes in through its `load_volume`, the same file
paths the rest of the app uses; the standard deviation is the engine's, imported by the bridge. This module chains
them and chooses how the layers look: both from 0 (black) to their largest value (white), so that equal colours mean
equal values across runs' legends.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..bridge.scene import export_transform, load_volume
from ..engine.translation.field_magnitude import write_field_magnitude

# PET-Heat runs black -> orange -> yellow -> white: ordered by brightness, so more displacement reads as hotter,
# and its colours stand out from the grey volume underneath (slicer-core's Iron is only red -> yellow)
COLORMAP_ID = "vtkMRMLPETProceduralColorNodePET-Heat"
OPACITY = 0.4  # the volume stays readable under the brightest (yellow to white) colours
LEGEND_STOPS = 8
ZERO = 1e-6  # the lower threshold of a layer whose zeros are transparent: a std below it is 0 (samples agreed)


def colour_overlay(volume_node, largest: float, zero_transparent: bool = False) -> None:
    """Colour a scalar volume node for overlay: PET-Heat from 0 (whatever its smallest value) to `largest`; with
    zero_transparent, voxels of 0 (and below) are not drawn (the volume underneath shows unchanged)."""
    display = volume_node.GetDisplayNode()
    if display is None:
        volume_node.CreateDefaultDisplayNodes()
        display = volume_node.GetDisplayNode()
    scene = volume_node.GetScene()
    if scene is not None and scene.GetNodeByID(COLORMAP_ID) is not None:  # once the colour logic added its defaults
        display.SetAndObserveColorNodeID(COLORMAP_ID)
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, max(float(largest), 1e-3))
    display.SetInterpolate(True)
    display.AutoThresholdOff()
    if zero_transparent:
        display.SetThreshold(ZERO, max(float(largest), ZERO))
    display.SetApplyThreshold(bool(zero_transparent))


def magnitude_volume(transform_node, name: str | None = None):
    """A scalar volume of |u| (mm) on the field's grid, coloured for overlay; returns (volume node, largest mm)."""
    scene = transform_node.GetScene()
    with tempfile.TemporaryDirectory(prefix="SemanticSynth-field-") as tmp:
        field, magnitude = Path(tmp) / "field.nrrd", Path(tmp) / "magnitude.nrrd"
        export_transform(transform_node, field)
        largest = write_field_magnitude(field, magnitude)
        node = load_volume(scene, magnitude, name or f"{transform_node.GetName()} magnitude (mm)")
    colour_overlay(node, largest)
    return node, largest


def uncertainty_overlay(std_node) -> float:
    """Colour the engine's standard deviation volume (K samples) for overlay, like the field's magnitude, with its
    zeros transparent (where every sample agreed, e.g. everywhere outside an edited region, the volume shows as it
    is); returns its largest value (the legend's top)."""
    image = std_node.GetImageData()
    largest = float(image.GetScalarRange()[1]) if image is not None else 0.0
    colour_overlay(std_node, largest, zero_transparent=True)
    return largest


def legend_gradient(volume_node) -> str:
    """A CSS linear-gradient with the overlay's colours from 0 to its largest value, for the legend in the page."""
    display = volume_node.GetDisplayNode()
    color = display.GetColorNode() if display is not None else None
    colors = color.GetScalarsToColors() if color is not None else None  # tables and procedural colour nodes alike
    if colors is None:
        return "linear-gradient(to right, black, white)"
    low, high = colors.GetRange()
    stops = []
    for i in range(LEGEND_STOPS):
        rgb = [0.0, 0.0, 0.0]
        colors.GetColor(low + (high - low) * i / (LEGEND_STOPS - 1), rgb)
        stops.append(f"rgb({', '.join(str(round(255 * c)) for c in rgb)})")
    return f"linear-gradient(to right, {', '.join(stops)})"
