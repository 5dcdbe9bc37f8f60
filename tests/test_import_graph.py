"""The package has no import cycle (the emulator's included): module-level imports only, since
imports inside functions are the deliberate lazy ones that keep `--help` fast."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "videobridge"


def module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # `if TYPE_CHECKING:` blocks are skipped
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("videobridge"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("videobridge"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph = module_graph()
    assert len(graph) > 50 and "videobridge.emulator.app" in graph
    assert cycles(graph) == []


def test_the_emulator_shares_nothing_with_the_client_it_checks() -> None:
    graph = module_graph()
    for name, deps in graph.items():
        if name.startswith("videobridge.emulator"):
            assert not {d for d in deps if d.startswith(("videobridge.daily", "videobridge.calls"))}, name
