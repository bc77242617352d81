"""Typed requests: every option has one definition (the request field) that the CLI, request files and the GUIs
read; JSON in and out; one-line errors naming the option; provenance keeps what shaped the result, not paths."""
from __future__ import annotations

import json

import pytest

from SemanticSynthLib.cli import build_parser, main, request_from_arguments
from SemanticSynthLib.engine.requests import REQUESTS, GenerationRequest, TranslationRequest, read_request
from SemanticSynthLib.engine.requests.base import flag_of, spec
from SemanticSynthLib.errors import SynthError

# Required values per command, enough to build each request.
REQUIRED = {
    "generate": {"labels": "l.nii.gz", "out": "o.nii.gz"},
    "translate": {"source": "s.nii.gz", "out": "o.nii.gz", "field": "f.nii.gz"},
    "evaluate": {"segmenter": "seg", "data": "d", "out": "r"},
    "train-autoencoder": {"data": "d", "out": "o"},
    "train-diffusion": {"data": "d", "out": "o", "autoencoder": "a"},
    "train-segmenter": {"data": "d", "out": "o"},
    "train-translator": {"data": "d", "out": "o", "autoencoder": "a"},
    "train-refiner": {"data": "d", "out": "o", "model": "m"},
    "make-dataset": {"labels": "l", "out": "o"},
}


def _subparser(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[command]


@pytest.mark.parametrize("command", list(REQUESTS))
def test_every_request_field_is_a_cli_option_and_nothing_else_is(command):
    cls = REQUESTS[command]
    dests = {a.dest for a in _subparser(command)._actions} - {"help", "progress", "threads", "debug"}
    assert dests == set(cls.model_fields)
    for name, info in cls.model_fields.items():
        assert info.description, f"{command} {name}: no help"
        assert spec(info)["role"] in (None, "data", "input", "model", "output", "folder", "checkpoint")


@pytest.mark.parametrize("command", list(REQUESTS))
def test_a_request_round_trips_through_json_and_a_file(command, tmp_path):
    request = REQUESTS[command].build(REQUIRED[command])
    assert type(request).from_json(request.to_json()) == request
    path = request.write(tmp_path / "request.json")
    assert read_request(path) == request
    assert json.loads(path.read_text(encoding="utf-8"))["command"] == command
    assert not list(tmp_path.glob(".partial-*"))


def test_flags_and_a_request_describe_the_same_job():
    args = build_parser().parse_args(["generate", "l.nii.gz", "o.nii.gz", "--phase", "portal_venous", "--temperature",
                                      "0.5", "--no-calibrate", "--steps", "7"])
    assert request_from_arguments(args) == GenerationRequest(labels="l.nii.gz", out="o.nii.gz", phase="portal_venous",
                                                             temperature=0.5, calibrate=False, steps=7)


def test_parameters_keep_what_shapes_the_result_and_drop_paths():
    request = GenerationRequest(labels="l.nii.gz", out="o.nii.gz", model="brain-mri", priors="p.json", overwrite=True)
    kept = request.parameters()
    assert "labels" not in kept and "out" not in kept and "overwrite" not in kept and "model" not in kept
    assert kept["priors"] == "p.json" and kept["calibrate"] is True and kept["seed"] == 0


@pytest.mark.parametrize("values,message", [
    ({"temperature": 0}, "request field temperature: must be above 0 and at most 1, not 0"),
    ({"temperature": "warm"}, "request field temperature: 'warm' is not a number"),
    ({"steps": 2.5}, "request field steps: 2.5 is not a whole number"),
    ({"phase": "venous"}, "request field phase: must be one of non_contrast, arterial, portal_venous, delayed, not 'venous'"),
    ({"modality": "pet"}, "request field modality: must be one of ct, mri, not 'pet'"),
    ({"device": "tpu"}, "request field device: must be one of auto, cpu, cuda, not 'tpu'"),
    ({"colour": 1}, "unknown request field 'colour' for generate"),
])
def test_a_bad_request_value_is_one_line_naming_the_field(values, message):
    with pytest.raises(SynthError) as caught:
        GenerationRequest.build({**REQUIRED["generate"], **values}, source="request field")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_translation_labels_come_in_pairs():
    with pytest.raises(SynthError, match="--labels needs --labels-out"):
        TranslationRequest.build({**REQUIRED["translate"], "labels": "seg.nii.gz"})


@pytest.mark.parametrize("text,message", [
    ("{bad", "is not valid JSON"),
    ('{"command": "gen"}', "names no known command ('gen')"),
    ('["generate"]', "names no known command (None)"),
    ('{"command": "generate", "out": "o.nii.gz"}', "generate: labels is required"),
    ('{"command": "generate", "labels": "l", "out": "o", "window": 2}', "request field window: must be between 8"),
])
def test_run_refuses_a_bad_request_file_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "request.json"
    path.write_text(text, encoding="utf-8")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_the_help_shows_each_option_with_its_default(capsys):
    assert main(["generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, info in GenerationRequest.model_fields.items():
        assert flag_of(name, info) in text
    assert "(default: error)" in text and "(default: auto)" in text
