"""SemanticSynth: label map -> CT/MRI volume by 3D latent semantic diffusion.

- `engine`: the models, generation, translation, training and evaluation; imports torch and MONAI, never slicer,
  Qt or the packages below;
- `bridge`: the Slicer bridge (MRML scene <-> engine in a child process; slicer-core, no Qt), used by the Slicer
  module (SemanticSynth/SemanticSynth.py) and by `web`, the browser app;
- `cli`: the command line, shared by all of them (model packages outside git: `engine.model.store`).
"""
__version__ = "0.15.0"
