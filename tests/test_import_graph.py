"""The library's import graph, read from the source (tests/import_graph.py): no cycle between modules, subpackages
or folders, and the engine never reaches up into the faces built on it."""
from __future__ import annotations

from import_graph import cycles, folder_graph, module_graph, subpackage_graph

ENGINE = "SemanticSynthLib.engine"


def test_training_and_evaluation_do_not_import_each_other():
    graph = subpackage_graph(module_graph())
    # both reach the segmenter package and the case lists through the folders below them, not through each other
    assert f"{ENGINE}.model" in graph[f"{ENGINE}.training"] and f"{ENGINE}.model" in graph[f"{ENGINE}.evaluation"]
    assert f"{ENGINE}.volume" in graph[f"{ENGINE}.training"] and f"{ENGINE}.volume" in graph[f"{ENGINE}.evaluation"]
    assert f"{ENGINE}.evaluation" not in graph[f"{ENGINE}.training"]
    assert f"{ENGINE}.training" not in graph[f"{ENGINE}.evaluation"]
    assert cycles(graph) == [] and cycles(module_graph()) == []


def test_no_cycle_between_folders():
    graph = folder_graph(module_graph())
    assert {f"{ENGINE}.volume", f"{ENGINE}.model", f"{ENGINE}.synthesis", f"{ENGINE}.translation"} <= set(graph)
    assert cycles(graph) == []


def test_a_folder_loop_through_a_module_at_the_root_of_a_folder_is_found():
    # the shape of the old model_store: a module directly in engine's parent folder importing into a subfolder
    # that imports it back is a cycle between folders, though no two modules import each other
    graph = {"SemanticSynthLib.engine": set(), "SemanticSynthLib.engine.a": {"SemanticSynthLib.engine.store"},
             "SemanticSynthLib.engine.store": {"SemanticSynthLib.engine.x.meta"},
             "SemanticSynthLib.engine.x": set(), "SemanticSynthLib.engine.x.meta": set(),
             "SemanticSynthLib.engine.x.gen": {"SemanticSynthLib.engine.a"}}
    assert cycles(graph) == []
    assert cycles(folder_graph(graph)) == [["SemanticSynthLib.engine", "SemanticSynthLib.engine.x"]]


def test_the_engine_never_imports_the_bridge_the_web_app_or_the_cli():
    graph = module_graph()
    faces = ("SemanticSynthLib.bridge", "SemanticSynthLib.web", "SemanticSynthLib.cli")
    wrong = sorted(f"{a} -> {b}" for a, targets in graph.items() if a.startswith(ENGINE)
                   for b in targets if b.startswith(faces))
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
