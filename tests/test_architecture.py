"""The package's shape (docs/ARCHITECTURE.md): imports go one way, from a room to the rooms on
floors below it (no import circle between modules); no module grows past ~600 lines; no module
imports another's private (underscore) names; every module resolves as an attribute."""
import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import deepstrf_utils

PACKAGE = deepstrf_utils.__name__
ROOT = Path(deepstrf_utils.__file__).parent
MAX_LINES = 600

#: room (a top-level module or subpackage of the package) -> its floor; a room imports only
#: rooms on lower floors (and itself). Below the ground floor, ``submodules`` (the packages'
#: lazy access); the package ``__init__`` sits on the ground floor (others read its ``__version__``).
FLOORS = {
    "submodules": -1,
    PACKAGE: 0, "metrics": 0, "spectral": 0, "shapes": 0, "spectrogram": 0, "stimuli": 0, "plain": 0, "files": 0,
    "visual_stimuli": 0,
    "adaptrans": 1,
    "models": 2,
    "datasets": 3,
    "training": 4, "pretrained": 4,
    "interpret": 5, "runs": 5,
    "report": 6,
    "notebook": 7,
}


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


def room(module: str) -> str:
    """The room of a module: ``deepstrf_utils.runs.runner`` -> ``runs``; the package itself -> its name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def floor_violations(graph: dict[str, set[str]], floors: dict[str, int]) -> list[str]:
    """Imports that do not go down: ``"a -> b (floor i -> floor j)"`` for every edge between two
    rooms whose target is not on a lower floor; a room missing from ``floors`` is reported too."""
    out = []
    for module in sorted(graph):
        for dep in sorted(graph[module]):
            a, b = room(module), room(dep)
            if a == b:
                continue
            if a not in floors or b not in floors:
                out.append(f"{module} -> {dep}: room {a if a not in floors else b!r} has no floor in FLOORS")
            elif floors[b] >= floors[a]:
                out.append(f"{module} -> {dep} (floor {floors[a]} -> floor {floors[b]})")
    return out


def test_floor_violations_finds_an_upward_import():
    graph = {"deepstrf_utils.models.zoo": {"deepstrf_utils.training.fitting"},
             "deepstrf_utils.training.fitting": {"deepstrf_utils.models.zoo", "deepstrf_utils.training.optim"},
             "deepstrf_utils.interpret.dstrf": {"deepstrf_utils.runs.runner"}}
    assert floor_violations(graph, FLOORS) == [
        "deepstrf_utils.interpret.dstrf -> deepstrf_utils.runs.runner (floor 5 -> floor 5)",
        "deepstrf_utils.models.zoo -> deepstrf_utils.training.fitting (floor 2 -> floor 4)",
    ]
    assert floor_violations({"deepstrf_utils.newroom.x": {"deepstrf_utils.models"}}, FLOORS) == [
        "deepstrf_utils.newroom.x -> deepstrf_utils.models: room 'newroom' has no floor in FLOORS"]


def test_every_room_imports_only_downwards():
    modules = _modules()
    assert set(map(room, modules)) <= set(FLOORS), f"rooms without a floor: {set(map(room, modules)) - set(FLOORS)}"
    violations = floor_violations(import_graph(modules), FLOORS)
    assert not violations, "imports that do not go down a floor:\n" + "\n".join(violations)


def private_imports(modules: dict[str, Path]) -> list[str]:
    """``"module: from x import _name"`` for every underscore name a module imports from another
    module of the package (dunder names such as ``__version__`` are public)."""
    out = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(name, is_package, node)[0]
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.append(f"{name}: from {target} import {alias.name}")
    return out


def test_no_module_imports_private_names_of_another():
    found = private_imports(_modules())
    assert not found, "private names imported across modules (give the helper a public name):\n" + "\n".join(found)


def test_no_private_torch_api():
    for name, path in _modules().items():
        assert "torch._C" not in path.read_text(), f"{name} uses torch._C (private torch API)"


def test_every_module_resolves_as_an_attribute_of_its_package():
    """``deepstrf_utils.interpret.dstrf`` works without importing it first: every package finds
    its submodules on disk (run in a fresh interpreter, each binding removed before it is read)."""
    names = sorted(n for n in _modules() if n != PACKAGE and not n.endswith(".__main__"))
    code = (
        "import functools, importlib, sys\n"
        f"names = {names!r}\n"
        "import deepstrf_utils\n"
        "for name in names:\n"
        "    parts = name.split('.')\n"
        "    for i in range(1, len(parts)):\n"
        "        vars(importlib.import_module('.'.join(parts[:i]))).pop(parts[i], None)\n"
        "    got = functools.reduce(getattr, parts[1:], deepstrf_utils)\n"
        "    assert got is sys.modules[name], name\n"
        "    assert parts[-1] in dir(sys.modules['.'.join(parts[:-1])]), name\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) == len(names)
