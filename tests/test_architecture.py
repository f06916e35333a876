"""The package's shape: imports go one way (no import circle between its modules) and no
module grows past ~600 lines (docs/ARCHITECTURE.md)."""
import ast
import pkgutil
from pathlib import Path

import pytest

import deepstrf_utils

PACKAGE = deepstrf_utils.__name__
ROOT = Path(deepstrf_utils.__file__).parent
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    """Every module of the package (packages as their ``__init__``) -> its file."""
    out = {PACKAGE: ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix=f"{PACKAGE}."):
        spec = info.module_finder.find_spec(info.name.rsplit(".", 1)[-1])
        out[info.name] = Path(spec.origin)
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names an import statement in ``module`` refers to (module or module.attr)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        parts = module.split(".")
        base = parts if is_package else parts[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> package modules it imports, anywhere in the file (also inside functions
    and ``if`` blocks). ``from pkg import name`` counts as importing ``pkg.name`` when that
    is a module, else ``pkg``; importing ``a.b.c`` also runs ``a`` and ``a.b``, but those
    package ``__init__`` edges are not counted, so that a parent re-exporting a child is
    not a circle."""
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _resolve(name, is_package, node)
            if isinstance(node, ast.ImportFrom):
                named = [t for t in targets[1:] if t in modules]
                targets = named + ([targets[0]] if len(named) < len(targets) - 1 else [])
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_reports_a_circle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_import_graph_reads_relative_and_function_local_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.c import g\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..a import x\n")
    mods = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py",
            "pkg.sub": pkg / "sub" / "__init__.py", "pkg.sub.c": pkg / "sub" / "c.py"}
    graph = import_graph(mods)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]


def test_no_import_circle_in_the_package():
    modules = _modules()
    assert f"{PACKAGE}.training.fitting" in modules  # the walk reaches sub-packages
    cycle = find_cycle(import_graph(modules))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_over_600_lines(name):
    path = _modules()[name]
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT.parent)} has {n} lines (at most {MAX_LINES}): split it"
