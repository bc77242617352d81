"""What `generate` needs: a label map in, a volume on its grid out, and every option of the sampling."""
from typing import ClassVar, Optional

from pydantic import model_validator

from ...errors import SynthError
from ..volume.memory import DEFAULT_MAX_VOXELS
from .base import Request, option
from ...checks import BOWEL_GAS, GUIDANCE, MARGIN_MM, SAMPLES, STEPS, TEMPERATURE, integer, one_of, seed, text
from .registries import device_names, label_table_names, modality_names, phase_names


class Sampling(Request):
    """How a generator samples: shared by generate and evaluate. None: the model package's default."""

    steps: Optional[int] = option(None, "DDIM steps (default: the model's)", check=STEPS)
    seed: int = option(0, "random seed: the same request and seed give the same volume", check=seed)
    guidance: Optional[float] = option(None, "classifier-free guidance scale (default: the model's; 1: none)",
                                       check=GUIDANCE)
    temperature: Optional[float] = option(
        None, "scale of the starting noise, above 0 and at most 1 (default: the model's). Lower follows the labels "
              "more closely with less varied texture; 1 gives the most varied samples", check=TEMPERATURE)


class GenerationRequest(Sampling):
    """Generate a CT or MRI volume on exactly a label map's grid.

    Args:
        labels: the label map (NIfTI, NRRD, MHA or a DICOM series folder).
        out: the volume to write (.nii.gz, .nii, .nrrd, .mha).
        model: a model package folder or bundled name; None: the default generator of the modality.
        modality: one of the package's modalities; None: its first.
        steps, seed, guidance, temperature: sampling (see Sampling); None: the package's default.
        device: "auto" (CUDA where available, else CPU), "cpu" or "cuda".
        phase: CT contrast phase whose reference HU the labels follow; None: the training data's.
        priors: JSON file of label id or name -> mean or {"mean", "range"}, overriding the package's priors.
        calibrate: move each label's mean onto its prior (the check before is reported either way).
        refine: on a map finer than the working spacing, run the package's detail refiner on the map's grid.
        texture: add the package's scanner texture (engine/synthesis/scanner_texture.py), where it has one, after
            mapping the unlabelled voxels' intensity where the profile has that map (unlabelled_intensity.py); not to
            the mean of several samples, nor to a region edit, which matches the existing volume's texture instead.
        unknown_labels: "error", or "background" to generate labels the model does not know as background.
        label_mapping: JSON file of input id -> model id or name.
        bowel_gas: CT: the gas share of each hollow organ: low, typical, high, drawn or a fraction; None: no split.
        outside_labels: "anatomy", or "background" to set every voxel outside the labels to the model's zero (air, no
            signal): a skull-stripped MRI.
        label_table: the vocabulary of the map's ids (a built-in table that translates to the model's); None: detected.
        edit: an existing volume (generated or real) on the label map's grid: only a region of it is regenerated,
            every other voxel is kept exactly (engine/synthesis/region_edit.py).
        previous_labels / region: the region to regenerate: the voxels whose labels differ from this earlier map, or
            this mask's non-zero voxels (with `edit`, exactly one of them).
        margin: mm around the region over which the new content is blended into the existing volume.
        samples: K seeds (seed, seed + 1, ...): OUT is their mean; with `uncertainty`, their per-voxel standard
            deviation is written there (engine/synthesis/uncertainty.py).
        max_voxels, window, fp32, series, overwrite: limits, sliding window, precision, DICOM series, replace OUT.
    """

    command: ClassVar[str] = "generate"

    labels: str = option(help="label map: NIfTI, NRRD, MHA or a DICOM series folder", check=text, role="data",
                         positional=True)
    out: str = option(help="output volume (.nii.gz, .nii, .nrrd, .mha)", check=text, role="output", positional=True)
    model: Optional[str] = option(None, "model package folder or bundled name (default: by modality)", role="model")
    modality: Optional[str] = option(None, "default: the model's first modality", check=one_of(modality_names))
    device: str = option("auto", "where the networks run: auto (CUDA where available), cpu or cuda",
                         check=one_of(device_names))
    phase: Optional[str] = option(None, "CT: generate every label at this contrast phase's reference HU "
                                        "(default: the training data's)", check=one_of(phase_names))
    priors: Optional[str] = option(None, "JSON of label id or name -> mean (HU for CT, x white matter for MRI) or "
                                         "{\"mean\": x, \"range\": [lo, hi]}, overriding the model's priors",
                                   role="input", recorded=True)
    calibrate: bool = option(True, "keep each label's mean as the network made it (default: moved onto its prior; "
                                   "the check before is reported either way)", flag="--no-calibrate")
    refine: bool = option(True, "where the label map is finer than the model's working spacing, leave the volume "
                                "upsampled (default: the model's detail refiner, where it has one, sharpens it on the "
                                "map's own grid)", flag="--no-refine")
    texture: bool = option(True, "leave out the scanner texture (default: the fine texture and noise of the model's "
                                 "training scans, and their intensity outside the labels by distance from them, where "
                                 "its package has a profile, applied to a single sample)",
                           flag="--no-texture")
    unknown_labels: str = option("error", "labels the model does not know: error, or generate them as background",
                                 check=one_of(("error", "background")))
    label_mapping: Optional[str] = option(None, "JSON of input id -> model id or name", role="input", recorded=True)
    bowel_gas: Optional[str] = option(None, "CT: gas in the hollow organs (colon, stomach, small bowel, duodenum, "
                                            "oesophagus), placed anteriorly: low, typical, high, drawn (per seed from the "
                                            "literature's range) or a fraction 0..1 of each organ (default: none, each "
                                            "organ at its whole-label prior)",
                                      check=BOWEL_GAS)
    outside_labels: str = option("anatomy", "voxels outside every label: anatomy (the model's guess: a head around a "
                                            "brain, a body around organs) or background (skull-stripped, air)",
                                 check=one_of(("anatomy", "background")))
    label_table: Optional[str] = option(None, "the label map's vocabulary, e.g. freesurfer_aseg, totalseg_v1, vista3d, "
                                              "total_mr, totalseg_body (default: detected from its ids and anatomy)",
                                        check=one_of(label_table_names))
    edit: Optional[str] = option(None, "an existing volume on LABELS' grid (generated or a real scan): regenerate only "
                                       "the region (--previous-labels or --region) and keep every other voxel",
                                 role="input", metavar="EXISTING", recorded=True)
    previous_labels: Optional[str] = option(None, "with --edit: the label map EXISTING was made from; the region is "
                                                  "where LABELS differs from it", role="input", metavar="OLD",
                                            recorded=True)
    region: Optional[str] = option(None, "with --edit: a mask on LABELS' grid of the voxels to regenerate",
                                   role="input", metavar="MASK", recorded=True)
    margin: float = option(6.0, "with --edit: mm around the region over which the new content blends into EXISTING",
                           check=MARGIN_MM, metavar="MM")
    samples: int = option(1, "generate K samples (seeds SEED..SEED+K-1) and write their mean to OUT", check=SAMPLES,
                          metavar="K")
    uncertainty: Optional[str] = option(None, "with --samples K >= 2: write the per-voxel standard deviation of the "
                                              "samples here", role="output", metavar="OUT")
    max_voxels: int = option(DEFAULT_MAX_VOXELS, "refuse label maps larger than this at working spacing (memory limit)",
                             check=integer(1))
    window: Optional[int] = option(None, "latent window edge for sliding-window generation", check=integer(8, 1024))
    fp32: bool = option(False, "no bf16 autocast")
    series: Optional[str] = option(None, "DICOM series UID, when the LABELS folder holds several")
    overwrite: bool = option(False, "replace OUT if it exists", recorded=False)

    @model_validator(mode="after")
    def _edit_and_samples(self):
        if (self.previous_labels or self.region) and not self.edit:
            raise SynthError("--previous-labels and --region choose the region of --edit EXISTING; give --edit too")
        if self.edit and bool(self.previous_labels) == bool(self.region):
            raise SynthError("--edit needs exactly one of --previous-labels OLD (the map EXISTING was made from) or "
                             "--region MASK")
        if self.edit and self.outside_labels == "background":
            raise SynthError("--outside-labels background would change voxels outside the edited region; leave it out "
                             "with --edit")
        if self.uncertainty and self.samples < 2:
            raise SynthError("--uncertainty needs --samples K with K >= 2 (a spread needs several samples)")
        return self
