"""`semanticsynth serve`: SemanticSynth in the browser, a trame-slicer app on slicer-core (extra `[web]`).

The page is a second face on the Slicer bridge: it loads files with `scene.load_label_map` / `scene.load_volume`,
generates with `logic.GenerationLogic`, translates with `translation.TranslationLogic` and `carry_segmentation`,
and writes downloads with `scene.export_volume` / `scene.export_transform`. It has no generation, translation or
MRML-conversion code of its own.
"""
