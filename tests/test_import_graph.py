"""The import graph of raysid/ and cli/: no cycle, and nothing below the pipeline reaches the artifact store.

Every ``import``/``from … import`` statement is read with ``ast``: at module level, inside functions and
under ``if TYPE_CHECKING:`` alike, since a lazy import or a type-only import still ties two modules together.
A stage package (data/, features/, tokenizers/, recommenders/, metrics/, semantic_ids/) is a set of pure
functions and classes of frames, arrays and tensors: the pipeline alone opens the store, so no module of
those packages may import the cache modules, the pipeline or the trial driver — directly or through another
raysid module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raysid", "cli")
BELOW_PIPELINE = tuple(f"raysid.{name}" for name in ("data", "features", "tokenizers", "recommenders", "metrics",
                                                    "semantic_ids"))
STORE_AND_DRIVERS = ("raysid.cache", "raysid.cache_manifest", "raysid.cache_maintenance", "raysid.pipeline",
                     "raysid.evaluation", "raysid.sweep")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of raysid/ and cli/ (a package by its __init__)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The raysid/cli modules that ``name`` imports anywhere in its file (``from P import m`` counts as P.m
    when P.m is a module, else as P)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return {target for target in found if target in modules and target != name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: in every strongly connected component of more than one module (Tarjan), a shortest
    cycle through each import edge inside it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.extend(cycles_within(set(component), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def cycles_within(members: set[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """For each import edge inside a component, a shortest cycle through it; each cycle once, rotated to
    start at its smallest module name."""
    found = []
    for source in sorted(members):
        for target in sorted(graph[source] & members):
            cycle = [source, *shortest_path(target, source, members, graph)]
            first = cycle.index(min(cycle[:-1]))
            rotated = [*cycle[first:-1], *cycle[:first], cycle[first]]
            if rotated not in found:
                found.append(rotated)
    return found


def shortest_path(start: str, end: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path from ``start`` to ``end`` inside ``members`` (breadth first), both included."""
    previous = {start: start}
    frontier = [start]
    while end not in previous:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members - set(previous)):
                previous[target] = node
                following.append(target)
        frontier = following
    path = [end]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports directly or through others -> the module that imports it on the way."""
    via: dict[str, str] = {}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for target in sorted(graph[node]):
            if target not in via and target != start:
                via[target] = node
                frontier.append(target)
    return via


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """'module -> ... -> forbidden' for each stage-package module that reaches the store or a driver."""
    problems = []
    for name in sorted(graph):
        if not any(name == p or name.startswith(f"{p}.") for p in BELOW_PIPELINE):
            continue
        via = reachable(graph, name)
        for target in sorted(via):
            if _is_under(target):
                chain = [target]
                while chain[-1] != name:
                    chain.append(via[chain[-1]])
                problems.append(" -> ".join(reversed(chain)))
    return problems


def _is_under(module: str) -> bool:
    return any(module == prefix or module.startswith(f"{prefix}.") for prefix in STORE_AND_DRIVERS)


def test_the_walker_sees_lazy_and_type_only_imports(tmp_path):
    package = tmp_path / "raysid"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from raysid.sub import b\n")
    (package / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from raysid.sub.b import thing\n")
    (package / "sub" / "b.py").write_text("def f():\n    from . import a\n    from .. import c\n")
    (package / "c.py").write_text("import raysid.sub.a\nfrom raysid import cache\n")
    (package / "cache.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["raysid.sub.a"] == {"raysid.sub.b"} and graph["raysid.sub.b"] == {"raysid.sub.a", "raysid.c"}
    assert graph["raysid.sub"] == {"raysid.sub.b"} and graph["raysid.c"] == {"raysid.sub.a", "raysid.cache"}
    assert cycles(graph) == [["raysid.c", "raysid.sub.a", "raysid.sub.b", "raysid.c"],
                             ["raysid.sub.a", "raysid.sub.b", "raysid.sub.a"]]


def test_the_layering_check_names_the_chain():
    graph = {"raysid.features.x": {"raysid.provenance"}, "raysid.provenance": {"raysid.cache_manifest"},
             "raysid.cache_manifest": set(), "raysid.pipeline.trial": {"raysid.cache"}, "raysid.cache": set()}
    assert layering_violations(graph) == ["raysid.features.x -> raysid.provenance -> raysid.cache_manifest"]


def test_no_import_cycle_in_raysid_and_cli():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_no_stage_package_reaches_the_artifact_store_or_the_pipeline():
    problems = layering_violations(import_graph())
    assert not problems, "stage packages reaching the store or a driver:\n" + "\n".join(problems)
