"""SemanticSynth: label map -> CT/MRI volume by 3D latent semantic diffusion.

The `engine` subpackage imports torch and MONAI but never slicer or Qt; `scene` is the MRML bridge.
"""
__version__ = "0.2.0"
