"""The displacement field of a translation as a colour layer in the slice views: its magnitude in mm.

Nothing here computes or converts: the magnitude is the engine's (`engine.field_magnitude`), the field leaves the
scene through the bridge's `export_transform` and the magnitude comes in through its `load_volume`, the same file
paths the rest of the app uses. This module chains them and chooses how the layer looks.
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


def magnitude_volume(transform_node, name: str | None = None):
    """A scalar volume of |u| (mm) on the field's grid, coloured for overlay; returns (volume node, largest mm)."""
    scene = transform_node.GetScene()
    with tempfile.TemporaryDirectory(prefix="SemanticSynth-field-") as tmp:
        field, magnitude = Path(tmp) / "field.nrrd", Path(tmp) / "magnitude.nrrd"
        export_transform(transform_node, field)
        largest = write_field_magnitude(field, magnitude)
        node = load_volume(scene, magnitude, name or f"{transform_node.GetName()} magnitude (mm)")
    display = node.GetDisplayNode()
    if scene.GetNodeByID(COLORMAP_ID) is not None:  # slicer-core has it once the colour logic added its defaults
        display.SetAndObserveColorNodeID(COLORMAP_ID)
    display.AutoWindowLevelOff()
    # 0 mm at the cold end whatever the field's smallest value, so equal colours mean equal mm across runs' legends
    display.SetWindowLevelMinMax(0.0, max(largest, 1e-3))
    display.SetInterpolate(True)
    return node, largest


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
