"""`semanticsynth serve`: SemanticSynth in the browser, a trame-slicer app on slicer-core (extra `[web]`).

The page is a second face on the Slicer bridge (`SemanticSynthLib/bridge/`): it loads files with
`scene.load_label_map` / `scene.load_volume`, generates with `generate_logic.GenerationLogic`, translates with
`translate_logic.TranslationLogic` and `carry_segmentation`, shows the field's magnitude through
`engine.field_magnitude`, and writes downloads with `scene.export_volume` / `scene.export_transform`. It has no
generation, translation or MRML-conversion code of its own.
"""
