"""The package's import structure, read from the source: no import cycle
among the imports that run when a module loads, and the core leaf packages
import downward only (never a paradigm package, even lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

import unigrounding

ROOT = Path(unigrounding.__file__).resolve().parent
PACKAGE = "unigrounding"

#: packages that hold what several paradigms share, and what they may import
#: of this library (``None``: anything but the paradigm packages)
CORE = {"structures": {"structures"}, "layers": {"structures", "layers"}, "data": None,
        "evaluation": None}  # fmt: skip
#: packages that hold one paradigm each, or code from outside
PARADIGMS = ("codecs", "plugins")


def _modules() -> dict[str, Path]:
    found = {}
    for file in ROOT.rglob("*.py"):
        parts = [PACKAGE, *file.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = file
    return found


MODULES = _modules()


def _imported(module: str, file: Path, at_load_only: bool) -> set[str]:
    """The library modules ``module`` imports (and, as Python does, the
    packages above each of them, but not the root package every module is in)."""
    tree = ast.parse(file.read_text())
    if at_load_only:  # top level, and under top-level if / try (TYPE_CHECKING aside)
        nodes = list(tree.body)
        for node in tree.body:
            if (
                isinstance(node, ast.If)
                and "TYPE_CHECKING" not in ast.unparse(node.test)
                or isinstance(node, ast.Try)
            ):
                nodes += node.body
    else:
        nodes = list(ast.walk(tree))
    is_package = file.name == "__init__.py"
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    deps = set()
    for name in names:
        if name not in MODULES:
            continue
        parts = name.split(".")
        deps.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {d for d in deps if d != module and not module.startswith(d + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_the_imports_that_run_at_load():
    graph = {m: _imported(m, f, at_load_only=True) for m, f in MODULES.items()}
    assert _cycles(graph) == []


def test_core_packages_import_downward_only():
    wrong = []
    for module, file in MODULES.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in CORE:
            continue
        allowed = CORE[parts[1]]
        for dep in _imported(module, file, at_load_only=False):
            top = dep.split(".")[1]
            if top in PARADIGMS or (allowed is not None and top not in allowed):
                wrong.append(f"{module} imports {dep}")
    assert wrong == []


def test_the_walk_sees_the_imports_it_checks():
    """The checks above can fail: the walk finds a known import of each kind."""
    mllm = _imported("unigrounding.models.mllm", MODULES["unigrounding.models.mllm"], True)
    assert {"unigrounding.codecs.base", "unigrounding.layers"} <= mllm
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
