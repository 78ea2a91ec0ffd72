"""The layout of the Python package, read from its source with ``ast``: no
import circle among its modules, no module reaching back into the package
through ``sys.modules``, a public surface that is ``__all__`` (every other
module-level name starts with ``_``), and no module over 700 lines."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

import pytest

# The package's own modules; the HTTP layer, the load generator and the
# examples are held to the same rules by their own tests.
_CORE_PARTS = ("runtime", "stm", "http", "loadgen", "examples")
_MAX_LINES = 700


def _find_package_dir() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "python" / "pyparallel"
        if (candidate / "__init__.py").is_file():
            return candidate
    return None


_PACKAGE_DIR = _find_package_dir()
pytestmark = pytest.mark.skipif(_PACKAGE_DIR is None,
                                reason="the package's source tree is not beside the tests")


def _package_dir() -> Path:
    assert _PACKAGE_DIR is not None
    return _PACKAGE_DIR


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _resolve(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    if node.level == 0:
        return node.module or ""
    base = module if _is_package(module, modules) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _is_extension(name: str) -> bool:
    """A module of the package built from C (pyparallel._core, ...)."""
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        return False
    return spec is not None and not str(spec.origin).endswith(".py")


def _imports(module: str, tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The package's modules that importing ``module`` runs (imports anywhere in
    it count, also those inside functions: a circle closed at call time is
    still a circle). A package imported on the way to one of its modules
    counts too, unless it encloses ``module`` (it is being imported already)."""
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, modules)
            subs = [f"{source}.{alias.name}" for alias in node.names]
            found = [s for s in subs if s in modules]
            targets.update(found)
            if any(s not in modules and not _is_extension(s) for s in subs):
                # names that source itself defines
                targets.add(source)
            elif source not in _ancestors(module):
                targets.add(source)  # its __init__ runs first
    edges = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]  # a name imported from a module
        if not target:
            continue  # outside the package (or its C extension)
        edges.add(target)
        edges.update(a for a in _ancestors(target)
                     if a in modules and a not in _ancestors(module))
    edges.discard(module)
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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


@functools.cache
def _trees() -> dict[str, tuple[Path, ast.Module]]:
    modules = _modules(_package_dir())
    return {name: (path, ast.parse(path.read_text(), str(path)))
            for name, path in modules.items()}


def _core_modules() -> list[str]:
    root = _PACKAGE_DIR
    if root is None:
        return []
    names = []
    for name, path in _modules(root).items():
        rel = path.relative_to(root).parts
        if len(rel) == 1 or rel[0] in _CORE_PARTS:
            names.append(name)
    return names


def _import_graph() -> dict[str, set[str]]:
    trees = _trees()
    modules = {name: path for name, (path, _) in trees.items()}
    return {name: _imports(name, tree, modules) for name, (_, tree) in trees.items()}


def test_no_import_circle_among_the_core_modules() -> None:
    graph = _import_graph()
    assert graph["pyparallel.stm._parallel"] >= {"pyparallel.runtime", "pyparallel.runtime._map"}
    assert graph["pyparallel.runtime._main"] >= {"pyparallel._lifecycle", "pyparallel._mainqueue"}
    core = {name for name in graph if not name.startswith("pyparallel.http")}
    assert _cycles({name: graph[name] & core for name in core}) == []


def test_no_import_circle_among_the_package_modules() -> None:
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _reaches_into_sys_modules(tree: ast.AST) -> list[int]:
    """Lines that look a module up in sys.modules by anything but "__main__"."""
    lines = []
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "get"):
            target = node.func.value
            key = node.args[0] if node.args else None
        else:
            continue
        if not (isinstance(target, ast.Attribute) and target.attr == "modules"
                and isinstance(target.value, ast.Name) and target.value.id == "sys"):
            continue
        if not (isinstance(key, ast.Constant) and key.value == "__main__"):
            lines.append(node.lineno)
    return lines


def test_no_module_reaches_back_through_sys_modules() -> None:
    offenders = {name: lines for name, (_, tree) in _trees().items()
                 if (lines := _reaches_into_sys_modules(tree))}
    assert offenders == {}


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


def _imported_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).partition(".")[0])
    return names


def _all_of(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                assert node.value is not None
                return list(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize("module", _core_modules())
def test_public_surface_is_all(module: str) -> None:
    _, tree = _trees()[module]
    public = _all_of(tree)
    assert public is not None, f"{module} has no __all__"
    available = _defined_names(tree) | _imported_names(tree)
    assert [n for n in public if n not in available] == []
    assert sorted(n for n in _defined_names(tree) - set(public) if not n.startswith("_")) == []


@pytest.mark.parametrize("module", _core_modules())
def test_module_is_under_the_line_limit(module: str) -> None:
    path, _ = _trees()[module]
    assert len(path.read_text().splitlines()) <= _MAX_LINES
