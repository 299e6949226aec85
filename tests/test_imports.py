"""The import layers of DESIGN.md, checked on the source (every import counts, those inside functions
too): no import cycle between pipeline modules, and no module importing from a layer above its own:

    errors → catalog → plumbing (contracts, params, camsparams, atomic, threads, jitcache, …) → metrics, datasets → models
           → cams, wsol, training, faithfulness, report → stages → cli

(an arrow points from a lower layer to the layers that may import it). Imports inside one layer are
allowed as long as they make no cycle; metrics and report never import torch (tests/test_layout.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"
LAYERS = (
    ("pipeline.errors",),
    ("pipeline.catalog",),
    ("pipeline.contracts", "pipeline.params", "pipeline.paramtypes", "pipeline.atomic", "pipeline.progress",
     "pipeline.parallel", "pipeline.distributed", "pipeline.camsparams", "pipeline.threads", "pipeline.jitcache", "pipeline.faithcontracts", "pipeline.paramchecks", "pipeline.protocolparams"),
    ("pipeline.metrics", "pipeline.datasets"),
    ("pipeline.models",),
    ("pipeline.cams", "pipeline.wsol", "pipeline.training", "pipeline.faithfulness", "pipeline.report"),
    ("pipeline.stages",),
    ("pipeline.cli", "pipeline.__main__", "pipeline"),
)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer of tests/test_imports.py"
    return best[0]


def imports_of(module: str) -> set[str]:
    """The pipeline modules `module` imports anywhere in its source (a package's __init__ as the package)."""
    path = MODULES[module]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative imports
                pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}".rstrip(".")
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out |= {n for n in names if n in MODULES and n != module}
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_pipeline_module_is_in_a_layer():
    for m in MODULES:
        layer(m)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
                    for m, targets in GRAPH.items() for t in targets if layer(t) > layer(m))
    assert not upward, "imports that climb the layers of DESIGN.md:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_pipeline_modules():
    cycles = _cycles(GRAPH)
    assert not cycles, f"import cycles (each a set of modules importing each other): {cycles}"


def test_the_checker_sees_imports_inside_functions_and_finds_a_cycle():
    assert "pipeline.wsol.rebuild" in GRAPH["pipeline.cams.dump"]  # imported inside load_checkpoint
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
