"""Imports point down the layers of DESIGN.md, and no module imports itself through others.

Every import in src/ counts: at module level, inside functions, under TYPE_CHECKING. Importing
a submodule runs its packages' ``__init__`` first, so those are edges too (except the importing
module's own packages, which are already running by then).

    python tests/unit/test_layers.py     # prints the package-level import graph
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "gemma_service"

# Top first. A package may import its own modules and any package of a lower layer; packages
# of one layer (siblings) may not import each other. The foundation at the bottom (errors,
# settings declarations, SSE, logs, model files) may be used by everything; its modules may
# import one another (no cycles, as everywhere).
LAYERS: list[set[str]] = [
    {"cli"},
    {"server"},
    {"bench", "client"},  # tools that talk to a server over HTTP
    {"api"},
    {"config"},  # the settings tree: each layer's settings class is a branch
    {"chat"},
    {"models"},  # the model catalogue and the pool that loads models into engines
    {"engine", "memory", "gpu"},
    {"llama"},  # starting llama.cpp: CPU kernels and their self-check (engine and embedder)
]
FOUNDATION = {"errors", "settings_fields", "settings_args", "sse", "logs", "model_files", ROOT}


def module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (with the packages that run on the way)."""
    modules = module_names()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, *([base] if base else [])])
                targets = [base]
                targets += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            for target in targets:
                if not target.startswith(ROOT) or target not in modules:
                    continue
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the packages on the way, then the module
                    step = ".".join(parts[:i])
                    # A module's own packages are already running when it is imported.
                    if step != name and step in modules and not name.startswith(step + "."):
                        graph[name].add(step)
    return graph


def component(module: str) -> str:
    """The layer unit a module belongs to: its top-level package or module under ROOT."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def rank(unit: str) -> int:
    if unit in FOUNDATION:
        return len(LAYERS)
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS or FOUNDATION")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                found.append(sorted(scc))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(module_names()):
        if v not in index:
            visit(v)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        for target in targets:
            if component(source) != component(target):
                out[component(source)].add(component(target))
    return out


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_every_import_points_down_the_layers() -> None:
    wrong = []
    for source, targets in sorted(import_graph().items()):
        for target in sorted(targets):
            a, b = component(source), component(target)
            if a == b or (b in FOUNDATION and a in FOUNDATION):
                continue
            if rank(b) <= rank(a):
                wrong.append(f"{source} -> {target}")
    assert wrong == []


def test_only_the_llama_backend_imports_llama_cpp() -> None:
    """DESIGN.md: only the backend touches llama.cpp (with its sampler chain and grammar parts),
    with the package that starts it (CPU kernels, vocabulary); the memory's GGUF embedder is
    known and left to the memory's issue."""
    importers = set()
    for name, path in module_names().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                mods.append(getattr(node, "module", None) or "")
                if any(m == "llama_cpp" or m.startswith("llama_cpp.") for m in mods):
                    importers.add(name)
    llama_package = {n for n in importers if n.startswith("gemma_service.llama.")}
    allowed = {
        "gemma_service.engine.llama_backend",
        "gemma_service.engine.sampling.llama_chain",
        "gemma_service.engine.sampling.llama_grammar",
        "gemma_service.engine.llama_projector",  # the backend's mtmd half
        "gemma_service.memory.embedder",
    }
    assert importers - llama_package <= allowed


if __name__ == "__main__":
    for unit, targets in sorted(package_graph(import_graph()).items(), key=lambda t: rank(t[0])):
        print(f"{unit:15} -> {', '.join(sorted(targets, key=rank))}")
