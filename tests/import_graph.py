"""Import cycles in SemanticSynthLib, between modules and between subpackages, read from the source (nothing runs).

    python tests/import_graph.py              # prints the cycles; exit status 1 if there are any

Every `import` and `from ... import` counts, also those inside functions (a lazy import still ties two parts
together). Three graphs must be free of cycles: modules; subpackages (an edge A -> B means some module of A imports
some module of B, a subpackage importing its parent not counted); and folders, where every edge counts, also one
into a parent folder, so that the engine's folders (engine.volume, engine.model, engine.synthesis, ...) form
layers. Only the modules lying directly in SemanticSynthLib (cli, errors, the version) stand for themselves there:
that folder is the namespace the faces and the engine share, not a layer.
tests/test_import_graph.py runs the same check.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # tests/ lies in the repository root
PACKAGE = "SemanticSynthLib"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The library modules that one module imports (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import x` imports the module x when there is one, else a name of the package
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module itself
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def module_graph(root: Path = REPO) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in (root / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def _grouped(graph: dict[str, set[str]], group, counts) -> dict[str, set[str]]:
    """The graph between groups of modules: an edge a -> b wherever a module of a imports one of b and counts(a, b)."""
    out: dict[str, set[str]] = {}
    for source, targets in graph.items():
        a = group(source)
        out.setdefault(a, set())
        for target in targets:
            b = group(target)
            out.setdefault(b, set())
            if a != b and counts(a, b):
                out[a].add(b)
    return out


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between subpackages (SemanticSynthLib.web, SemanticSynthLib.engine.training, ...); a module that
    lies directly in SemanticSynthLib or SemanticSynthLib.engine stands for itself."""
    loose = {PACKAGE, f"{PACKAGE}.engine"}

    def group(module):
        if module in loose:
            return module
        parent = module.rpartition(".")[0]
        is_package = any(other.startswith(module + ".") for other in graph)
        return module if parent in loose and not is_package else (module if is_package else parent)

    # a subpackage importing its parent package is no cycle here
    return _grouped(graph, group, lambda a, b: not a.startswith(b + "."))


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between the folders that hold the modules; every import counts, also into a parent folder."""
    folders = {m for m in graph if any(other.startswith(m + ".") for other in graph)}

    def folder(module):
        if module in folders:
            return module
        parent = module.rpartition(".")[0]
        return module if parent == PACKAGE else parent

    return _grouped(graph, folder, lambda a, b: True)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def edges_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    members = set(component)
    return [f"{a} -> {b}" for a in sorted(component) for b in sorted(graph.get(a, ())) if b in members]


def main() -> int:
    graph = module_graph()
    found = 0
    for title, g in (("modules", graph), ("subpackages", subpackage_graph(graph)), ("folders", folder_graph(graph))):
        loops = cycles(g)
        found += len(loops)
        print(f"{title}: {len(g)} nodes, {sum(len(t) for t in g.values())} edges, {len(loops)} cycle(s)")
        for component in loops:
            print("  cycle: " + ", ".join(component))
            for edge in edges_within(g, component):
                print("    " + edge)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
