"""Build the bundled label tables (SemanticSynthLib/engine/volume/label_tables/*.json) from their sources.

Run once: python scripts/make_label_tables.py ../shared/data
TotalSegmentator v2 ids come from the data's total_v2_labels.json; MUSE from muse_labels.csv (primary
regions < 300, plus ids 46 and 69 that the DLMUSE maps contain but the CSV does not name); AMOS from
the AMOS 2022 challenge's 15 abdominal organs.
"""
import csv
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "SemanticSynthLib" / "engine" / "volume" / "label_tables"
AMOS = ["spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
        "postcava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum", "bladder",
        "prostate/uterus"]
AMOS_SYNONYMS = {"postcava": ["inferior vena cava", "inferior_vena_cava"], "right kidney": ["kidney_right"],
                 "left kidney": ["kidney_left"], "bladder": ["urinary_bladder"],
                 "right adrenal gland": ["adrenal_gland_right"], "left adrenal gland": ["adrenal_gland_left"]}


def write(name, title, labels):
    (OUT / f"{name}.json").write_text(json.dumps({"name": name, "title": title, "labels": labels}, indent=1))


def main(data: Path):
    OUT.mkdir(parents=True, exist_ok=True)
    ts = json.loads((data / "totalseg" / "total_v2_labels.json").read_text(encoding="utf-8"))
    write("totalseg_v2", "TotalSegmentator v2 (total task)",
          [{"id": int(k), "name": v} for k, v in sorted(ts.items(), key=lambda kv: int(kv[0]))])
    write("amos", "AMOS 2022 (15 abdominal organs)",
          [{"id": i + 1, "name": n, **({"synonyms": AMOS_SYNONYMS[n]} if n in AMOS_SYNONYMS else {})}
           for i, n in enumerate(AMOS)])
    rows = list(csv.DictReader(open(data / "ixi_muse" / "muse_labels.csv")))
    muse = {int(r["Index"]): r["Name"] for r in rows if int(r["Index"]) < 300}
    muse.setdefault(46, "MUSE_46")
    muse.setdefault(69, "MUSE_69")
    write("muse", "MUSE brain regions (DLMUSE primary labels)",
          [{"id": i, "name": muse[i]} for i in sorted(muse)])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
