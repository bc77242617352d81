"""The library's import graph, read from the source (scripts/import_graph.py): the engine's subpackages import
no one in a circle, and the engine never reaches up into the faces built on it."""
from __future__ import annotations

import testdata  # noqa: F401  (puts scripts/ on the path)
from import_graph import cycles, module_graph, subpackage_graph  # noqa: E402

ENGINE = "SemanticSynthLib.engine"


def test_training_and_evaluation_do_not_import_each_other():
    graph = subpackage_graph(module_graph())
    assert f"{ENGINE}.segmenter" in graph[f"{ENGINE}.training"] and f"{ENGINE}.segmenter" in graph[f"{ENGINE}.evaluation"]
    assert f"{ENGINE}.cases" in graph[f"{ENGINE}.training"] and f"{ENGINE}.cases" in graph[f"{ENGINE}.evaluation"]
    assert cycles(graph) == [] and cycles(module_graph()) == []


def test_the_engine_never_imports_the_bridge_the_web_app_or_the_cli():
    graph = module_graph()
    faces = ("SemanticSynthLib.bridge", "SemanticSynthLib.web", "SemanticSynthLib.cli")
    wrong = sorted(f"{a} -> {b}" for a, targets in graph.items() if a.startswith(ENGINE)
                   for b in targets if b.startswith(faces))
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
