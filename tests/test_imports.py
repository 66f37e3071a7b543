"""Dependencies point one way: no import cycle, and every module imports first in any order."""

import ast
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "overparam"


def _module_files() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package)}`` for every module of overparam."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _module_files()
# Run as ``python -m overparam`` only: importing it starts the command line.
IMPORTABLE = sorted(name for name in MODULES if not name.endswith("__main__"))


def _imports(node: ast.AST):
    """Every import statement, at any depth (lazy imports in functions are dependencies too),
    except under ``if TYPE_CHECKING:``, which never runs."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    for field, value in ast.iter_fields(node):
        skip = field == "body" and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(
            node.test)
        for child in (value if isinstance(value, list) else [value]):
            if isinstance(child, ast.AST) and not skip:
                yield from _imports(child)


def _targets(name: str, is_package: bool, node) -> set[str]:
    """The overparam modules an import statement executes (a package runs its ``__init__``)."""
    if isinstance(node, ast.Import):
        explicit = [alias.name for alias in node.names]
    else:
        if node.level:
            base = name.split(".")[:len(name.split(".")) - node.level + is_package]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module
        submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
        # ``from . import sub`` needs the package's __init__ only to find the submodule.
        explicit = submodules if len(submodules) == len(node.names) else [target, *submodules]
    executed = set()
    for dotted in explicit:
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            # the packages above this module are running already: importing them is no edge,
            # unless the import names the package itself
            if prefix in MODULES and (prefix == dotted or not name.startswith(prefix + ".")):
                executed.add(prefix)
    executed.discard(name)
    return executed


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` within overparam, from the source (ast)."""
    graph = {}
    for name, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set().union(*(_targets(name, is_package, n) for n in _imports(tree)))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None (iterative DFS)."""
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    for root in sorted(graph):
        if state[root]:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt, 2) == 1:
                return [*path[path.index(nxt):], nxt]
            elif state.get(nxt, 2) == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    assert "overparam.operators" in graph["overparam.estimators.base"]  # from ..operators
    assert "overparam.estimators" in graph["overparam.methods"]  # lazy, inside a function
    assert "overparam.operators.base" in graph["overparam.operators.matrix"]  # from .base
    assert "overparam.operators" not in graph["overparam.operators.matrix"]
    code = ("from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    import a\nelse:\n    import b\n")
    assert [n.names[0].name for n in _imports(ast.parse(code))] == ["TYPE_CHECKING", "b"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _environment():
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


# The layers of docs/DEVELOPING.md, bottom first: a module imports only from its own layer
# and the layers before it. Modules of no layer here (leaves such as _optional) are free.
LAYERS = [
    ["_validation"], ["metrics"], ["operators"], ["datasets", "testing"],
    ["parameterizations"], ["stopping"], ["solvers"], ["_registry"], ["estimators"],
    ["baselines"], ["methods"], ["experiments"], ["cli", "__main__"],
]


def _unit(module: str) -> str:
    """``overparam.solvers.steps`` -> ``solvers``."""
    return module.split(".")[1] if "." in module else module


def test_dependencies_point_down_the_layers():
    rank = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
    upward = sorted(f"{a} -> {b}" for a, deps in import_graph().items() for b in deps
                    if _unit(a) in rank and _unit(b) in rank
                    and rank[_unit(b)] > rank[_unit(a)])
    assert not upward, "imports against the layers of docs/DEVELOPING.md: " + ", ".join(upward)


_IMPORT_ALL = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    if sys.argv[2] == "first":  # each module the first overparam import of the process
        for loaded in [m for m in sys.modules if m == "overparam" or m.startswith("overparam.")]:
            del sys.modules[loaded]
    importlib.import_module(name)
"""


def _orders():
    shuffled = random.Random(0).sample(IMPORTABLE, len(IMPORTABLE))
    return {"sorted": IMPORTABLE, "reversed": IMPORTABLE[::-1], "shuffled": shuffled}


@pytest.mark.parametrize("order", list(_orders()))
def test_every_module_imports_in_a_fresh_interpreter(order):
    names = _orders()[order]
    assert len(names) > 50
    env = _environment()
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL, json.dumps(names), "chain"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]


def test_every_module_imports_first():
    """Each module imported by a process where no other overparam module is loaded yet."""
    env = _environment()
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL, json.dumps(IMPORTABLE), "first"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
