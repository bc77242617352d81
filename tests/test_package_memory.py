"""A package whose network config passes the schema's caps but would not fit in memory is refused before
anything is allocated (issue 12, item 4)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

from SemanticSynthLib.engine.model.store import resolve_model
from testdata import REPO


def test_a_network_too_large_for_memory_is_refused_before_it_is_built(tmp_path):
    package = tmp_path / "huge"
    shutil.copytree(resolve_model("abdomen-ct"), package)
    meta = json.loads((package / "metadata.json").read_text(encoding="utf-8"))
    meta["diffusion"]["config"].update(channels=[1024] * 6, attention_levels=[False] * 6, num_res_blocks=8)
    (package / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    out = tmp_path / "out.nii.gz"
    run = subprocess.run([sys.executable, "-m", "SemanticSynthLib", "generate",
                          str(REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"),
                          str(out), "--model", str(package)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the model package's diffusion U-Net would need 33.1 GB")
    assert "Traceback" not in run.stderr and not out.exists()
