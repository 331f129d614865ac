"""The code's shape, as the project promises it (issue 18): short handlers over one record of the controls, short
functions in the web layer, no import cycle in the package, and the measurement code apart from the product.
Read from the source (ast), so a change that breaks the shape fails here, whatever it does at run time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "playground"


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(name: str, tree: ast.Module, is_package: bool) -> set[str]:
    """The package's modules `name` imports, at any depth of its code (lazy imports too)."""
    found = set()
    base = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("playground")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("playground"):
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}
    return found


MODULES = _modules()
PACKAGES = {n for n in MODULES if (PACKAGE.parent / n.replace(".", "/") / "__init__.py").exists()}
GRAPH = {n: {m for m in _imports(n, t, n in PACKAGES) if m in MODULES and m != n} for n, t in MODULES.items()}


def test_no_import_cycle_in_the_package():
    """A module never imports, through any chain, a module that imports it (a package's __init__ re-exporting
    its own modules is not a cycle: it is how a package is read)."""
    graph = {n: {m for m in deps if not (n in PACKAGES and m.startswith(n + "."))} for n, deps in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
            if m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_the_product_does_not_import_the_measurement_code_except_the_bench_command():
    importers = {n for n, deps in GRAPH.items() if any(m.startswith("playground.measure") for m in deps)}
    assert {n for n in importers if not n.startswith("playground.measure")} == {"playground.cli"}


def _functions(module: str):
    for node in ast.walk(MODULES[module]):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_web_layer_function_is_over_120_lines():
    long = [(m, f.name, f.end_lineno - f.lineno + 1) for m in MODULES if m.startswith("playground.ui")
            for f in _functions(m) if f.end_lineno - f.lineno + 1 > 120]  # fmt: skip
    assert not long


def test_no_handler_takes_more_than_5_parameters():
    handlers = [f for f in _functions("playground.ui.handlers") if f.name.startswith("on_")]
    assert len(handlers) > 15
    wide = [(f.name, len(f.args.args)) for f in handlers if len(f.args.args) + len(f.args.kwonlyargs) > 5]
    assert not wide


def test_handlers_do_not_call_each_other():
    handlers = {f.name for f in _functions("playground.ui.handlers") if f.name.startswith("on_")}
    calls = [(f.name, c.func.id) for f in _functions("playground.ui.handlers") if f.name in handlers
             for c in ast.walk(f) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in handlers]  # fmt: skip
    assert not calls


def test_the_control_names_are_written_once():
    """Each control's name is a field of `Controls`; no other module of the web layer spells the whole list out
    again (a module may name the few controls it is about)."""
    from playground.ui.controls import CONTROL_NAMES

    for module, tree in MODULES.items():
        if not module.startswith("playground.ui") or module == "playground.ui.controls":
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List)):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                assert not set(CONTROL_NAMES) <= set(names), f"{module} spells out the controls again"
