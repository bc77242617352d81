"""What `translate` needs: a source volume in; the translated volume, its displacement field and (optionally)
the source's labels carried through the field out, all on the source's grid."""
from typing import ClassVar, Optional

from pydantic import model_validator

from ...errors import SynthError
from .base import Request, option
from ...checks import STEPS, seed, text, one_of
from .registries import device_names


class TranslationRequest(Request):
    """Translate a volume to a translator package's target contrast, traceably.

    Args:
        source: the source volume (NIfTI, NRRD, MHA or a DICOM series folder).
        out: the translated volume, on the source's grid.
        field: the displacement field to write (ITK vector image, LPS mm): output point x -> source point x + u(x).
        model: a translator package folder or bundled name; None: brain-t1-to-t2like.
        deform: False: intensity translation only, the field is zero.
        steps, seed: DDIM steps (None: the package's) and random seed.
        labels, labels_out: a source label map to carry through the field (nearest neighbour), and where to write it.
        device, fp32, series, overwrite: as for generation.
    """

    command: ClassVar[str] = "translate"

    source: str = option(help="source volume: NIfTI, NRRD, MHA or a DICOM series folder", check=text, role="data",
                         positional=True)
    out: str = option(help="translated volume, on the source's grid", check=text, role="output", positional=True)
    field: str = option(help="displacement field to write (ITK vector image, LPS mm): output point x -> source point "
                             "x + u(x)", check=text, role="output")
    model: Optional[str] = option(None, "translator package folder or bundled name (default: brain-t1-to-t2like)",
                                  role="model")
    deform: bool = option(True, "intensity translation only; the field is the identity (zero)", flag="--no-deform")
    steps: Optional[int] = option(None, "DDIM steps (default: the model's)", check=STEPS)
    seed: int = option(0, "random seed", check=seed)
    labels: Optional[str] = option(None, "source label map to carry through the field (nearest neighbour)",
                                   role="data")
    labels_out: Optional[str] = option(None, "where to write the carried label map", role="output")
    device: str = option("auto", "where the networks run: auto (CUDA where available), cpu or cuda",
                         check=one_of(device_names))
    fp32: bool = option(False, "no bf16 autocast")
    series: Optional[str] = option(None, "DICOM series UID, when the SOURCE folder holds several")
    overwrite: bool = option(False, "replace outputs that exist", recorded=False)

    @model_validator(mode="after")
    def _labels_in_pairs(self):
        if self.labels_out and not self.labels:
            raise SynthError("--labels-out needs --labels SEG, the source label map to carry")
        if self.labels and not self.labels_out:
            raise SynthError("--labels needs --labels-out OUT, where to write the carried label map")
        return self
