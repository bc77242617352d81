"""Issue 34 item 4: Dice per structure of segmenters trained on real, synthetic, and both, on the 20 real
validation subjects (scripts/brain_mri_split.py), each scored against the subject's MUSE labels grouped by the
segmenter's own groups (muse_groups).

python scripts/synthetic_training_dice.py runs/synth docs/synthetic_training
reads runs/synth/val.csv and the segmenters runs/synth/segmenter-{a,b,c,d} (those that exist) and the bundled
SemanticSynthLib/models/brain-mri-segmenter; ratios are to (a), or to the bundled one while (a) is not trained, writes OUT/dice.json and prints the Markdown table.
"""
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from SemanticSynthLib.engine.evaluation.metrics import dice_per_class
from SemanticSynthLib.engine.model.segmenter import MULTIPLE, load_segmenter
from SemanticSynthLib.engine.volume.geometry import resample_labels, working_grid
from SemanticSynthLib.engine.volume.io import array_of, read_volume
from SemanticSynthLib.engine.volume.working_image import units_on_grid

TRAINING = {"a": "128 real T1s", "a (bundled)": "128 real T1s (the bundled segmenter, 1300 of its steps unweighted)", "b": "128 synthetic T1s (same maps)",
            "c": "real + synthetic", "d": "real + synthetic from augmented maps"}


def score(segmenter, rows) -> np.ndarray:
    """Dice (cases x groups, background excluded) of the segmenter on the real images."""
    norm = segmenter.metadata["normalization"]["mri"]
    dice = []
    for row in rows:
        label_map = read_volume(row["label"])
        grid = working_grid(label_map, segmenter.working_spacing, MULTIPLE)
        truth = segmenter.groups.group_map(array_of(resample_labels(label_map, grid)))
        real = units_on_grid(read_volume(row["image"]), grid, norm)
        dice.append(dice_per_class(segmenter.segment(real), truth, segmenter.groups.num_classes))
    return np.array(dice)


def table(results: dict, names: list[str]) -> str:
    """Mean Dice per structure of each training set, and its ratio to the reference (a)."""
    sets = list(results)
    base = "a" if "a" in results else "a (bundled)"
    others = [s for s in sets if s != base]
    lines = ["| structure | " + " | ".join(f"({s})" for s in sets) + " | " + " | ".join(f"({s})/({base})" for s in others)
             + " |", "|---" * (1 + len(sets) + len(others)) + "|"]
    means = {s: np.nanmean(np.array(results[s]["dice"]), 0) for s in sets}
    for i, name in enumerate(names + ["mean"]):
        value = {s: (means[s][i] if i < len(names) else means[s].mean()) for s in sets}
        lines.append(f"| {name} | " + " | ".join(f"{value[s]:.3f}" for s in sets) + " | "
                     + " | ".join(f"{value[s] / value[base]:.3f}" for s in others) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = list(csv.DictReader(open(run / "val.csv", encoding="utf-8")))
    paths = {"a": run / "segmenter-a", "a (bundled)": Path("SemanticSynthLib/models/brain-mri-segmenter"),
             **{s: run / f"segmenter-{s}" for s in "bcd"}}
    results, names = {}, None
    for key, path in paths.items():
        if not (path / "metadata.json").is_file():
            print(f"({key}) {path}: not trained yet, left out")
            continue
        segmenter = load_segmenter(path)
        names = segmenter.groups.names
        started = time.monotonic()
        dice = score(segmenter, rows)
        training = segmenter.metadata.get("training", {}).get("segmenter", {})
        results[key] = {"training_set": TRAINING[key], "segmenter": str(path), "dice": dice.tolist(),
                        "mean_dice": float(np.nanmean(dice)), "training_steps": training.get("steps"),
                        "training_time_s": training.get("time_s"), "scoring_time_s": round(time.monotonic() - started, 1)}
        print(f"({key}) {TRAINING[key]}: mean Dice {np.nanmean(dice):.3f} over {len(rows)} validation subjects")
    out.mkdir(parents=True, exist_ok=True)
    (out / "dice.json").write_text(json.dumps({"structures": names, "cases": [r["label"] for r in rows],
                                               "results": results}, indent=1), encoding="utf-8")
    print(table(results, names))
