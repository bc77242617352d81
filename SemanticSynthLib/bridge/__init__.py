"""The Slicer bridge: between an MRML scene and the engine, with slicer-core and without Qt.

- generate_logic: segmentation node -> synthetic volume node (GenerationLogic);
- translate_logic: volume node -> translated volume node + grid transform node (TranslationLogic), and
  carry_segmentation through that transform;
- scene: MRML <-> files (label map export, volume and transform import, provenance attributes); RAS meets LPS
  there and only there;
- jobs: one engine run seen from the scene (progress, cancel, nodes only on success), and model downloads;
- process: the engine's child process (`python -m SemanticSynthLib ... --progress json`) and killing its tree;
- dependencies: the engine's Python packages installed on first use inside Slicer.

The Slicer module (SemanticSynth/SemanticSynth.py) and the web app (SemanticSynthLib/web) are two faces on it.
The engine (SemanticSynthLib/engine) never imports this package.
"""
