"""One request, three faces: the CLI's flags, a request file run by `python -m SemanticSynthLib run` and the Slicer
bridge (which the web page drives) give the same voxels and the same provenance. Real child processes, a real
slicer-core scene, the tiny CT package; nothing mocked. (The browser test compares the page with the CLI.)"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from SemanticSynthLib.bridge.generate_logic import GenerationLogic
from SemanticSynthLib.cli import build_parser, request_from_arguments
from SemanticSynthLib.engine.requests import GenerationRequest, read_request

from slicer_testdata import REPO, SAMPLE_SEGMENTATION

# Options away from every default, so that a face that dropped one would show.
OPTIONS = {"modality": "ct", "steps": 2, "seed": 5, "phase": "portal_venous", "temperature": 0.7, "calibrate": False,
           "texture": False, "unknown_labels": "background", "device": "cpu"}
FLAGS = ["--modality", "ct", "--steps", "2", "--seed", "5", "--phase", "portal_venous", "--temperature", "0.7",
         "--no-calibrate", "--no-texture", "--unknown-labels", "background", "--device", "cpu"]


def _child(args):
    done = subprocess.run([sys.executable, "-m", "SemanticSynthLib", *map(str, args), "--progress", "none"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _decoded(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _file_record(path) -> dict:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {key[len("SemanticSynth_"):]: _decoded(reader.GetMetaData(key)) for key in reader.GetMetaDataKeys()
            if key.startswith("SemanticSynth_")}


def _node_voxels(node) -> np.ndarray:
    from vtk.util.numpy_support import vtk_to_numpy

    data = node.GetImageData()
    x, y, z = data.GetDimensions()
    return vtk_to_numpy(data.GetPointData().GetScalars()).reshape(z, y, x)


def test_the_cli_a_request_file_and_the_bridge_give_the_same_volume_and_provenance(scene, sample_segmentation,
                                                                                   tiny_ct_model, tmp_path):
    # 1. the command line's flags
    cli_out = tmp_path / "cli.nrrd"
    flags = ["generate", SAMPLE_SEGMENTATION, cli_out, "--model", tiny_ct_model, *FLAGS]
    _child(flags)

    # 2. the same request, written to a file and run as the bridge runs it
    request = GenerationRequest(labels=str(SAMPLE_SEGMENTATION), out=str(tmp_path / "run.nrrd"), model=str(tiny_ct_model),
                                **OPTIONS)
    assert request_from_arguments(build_parser().parse_args([str(a) for a in flags])) == request.model_copy(
        update={"out": str(cli_out)})  # the flags describe exactly this request
    request_file = request.write(tmp_path / "request.json")
    assert read_request(request_file) == request
    _child(["run", request_file, "--result", tmp_path / "result.json"])
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))

    # 3. the bridge, from the segmentation node
    node = GenerationLogic().generate(sample_segmentation, model=str(tiny_ct_model), **OPTIONS)

    cli_voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(cli_out)))
    run_voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "run.nrrd")))
    np.testing.assert_array_equal(run_voxels, cli_voxels)
    np.testing.assert_array_equal(_node_voxels(node), cli_voxels)

    cli_record, run_record = _file_record(cli_out), _file_record(tmp_path / "run.nrrd")
    node_record = {key: _decoded(node.GetAttribute("SemanticSynth." + key)) for key in cli_record}
    assert run_record == cli_record and node_record == cli_record
    assert result["provenance"] == {k: v for k, v in cli_record.items() if k in result["provenance"]}
    # the record holds the resolved request: the options given, and the package's defaults where none was given
    resolved = cli_record["request"]
    assert {k: resolved[k] for k in OPTIONS} == OPTIONS
    assert resolved["guidance"] == 1.0 and "labels" not in resolved and "out" not in resolved
