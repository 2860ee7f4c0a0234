"""The package's shape: no import cycle between its modules, and none longer than one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import nbdebug

PACKAGE = Path(nbdebug.__file__).parent
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _runtime_imports(tree: ast.AST):
    """Every import statement, at any depth (imports inside functions count), except those
    under ``if TYPE_CHECKING:``, which never run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in _runtime_imports(ast.Module(body=[child])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def _dependencies(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports when it runs."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from .landscape import cache" imports the module nbdebug.landscape.cache
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        found.update(t for t in targets if t in modules and t != name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = "open", path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_through_others():
    modules = _modules()
    graph = {name: _dependencies(name, path, modules) for name, path in modules.items()}
    assert graph["nbdebug.session"] >= {"nbdebug.landscape.choice", "nbdebug.run"}  # the parsing works
    assert _cycle(graph) is None, "import cycle: " + " -> ".join(_cycle(graph) or [])


def test_imports_in_functions_count_and_type_checking_imports_do_not(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nfrom . import head\n"
        "if TYPE_CHECKING:\n    from .session import Session\n"
        "def f():\n    from .landscape import cache\n    import nbdebug.widget\n"
    )
    modules = _modules()
    assert _dependencies("nbdebug.mod", module, modules) == {
        "nbdebug.head",
        "nbdebug.landscape.cache",
        "nbdebug.widget",
    }


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_reads_in_one_sitting():
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
