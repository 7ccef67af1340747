"""The package's imports run one way: pure ``domain/`` at the bottom; the stop signal, settings and
Dagster's internals above it; ``resources/`` and ``execution/`` (which never import each other
nor the covers) above them; ``covers/`` above those; the definitions, the instance class, the
CLI and the backend on top. And no module imports itself back through another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "passport_pipeline"
# Top-level modules and packages by layer; anything unlisted is the top (definitions, cli, ...).
LAYERS = {
    "domain": 0,
    "stop_signal": 1,
    "dagster_internals": 1,
    "settings": 1,
    "app_schema": 1,
    "render": 1,
    "resources": 2,
    "execution": 2,
    "covers": 3,
}
TOP = 9


def imports_of(path: Path) -> set[str]:
    """The ``passport_pipeline`` modules a file imports (at any depth of its body)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "passport_pipeline":
            found |= {f"passport_pipeline.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "passport_pipeline"
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("passport_pipeline.")}
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "passport_pipeline"
    return top, LAYERS.get(top, TOP)


GRAPH = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_runs_back_up_the_layers(module):
    top, layer = layer_of(module)
    upward = []
    for imported in GRAPH[module]:
        imported_top, imported_layer = layer_of(imported)
        sideways = imported_layer == layer == 2 and imported_top != top
        if imported_layer > layer or sideways:
            upward.append(imported)
    assert upward == [], f"{module} imports up or across the layers"


def test_no_module_imports_itself_back():
    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, path = stack.pop()
            for imported in GRAPH.get(module, ()):
                if imported == start:
                    return [*path, start]
                if imported not in seen and imported in GRAPH:
                    seen.add(imported)
                    stack.append((imported, [*path, imported]))
        return None

    cycles = [cycle for module in sorted(GRAPH) if (cycle := cycle_from(module))]
    assert cycles == []
