"""The runner's modules import each other without cycles, and none imports the command line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from workbook.registry import ROOT

PACKAGE = ROOT / "workbook"
# The module `python -m workbook` runs: the one place allowed to import the command line.
ENTRY = "workbook.__main__"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, level: int, importer: str, is_package: bool) -> str:
    if not level:
        return name
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def string_tuples(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level names bound to a tuple or list of string literals, such as cli's COMMAND_MODULES."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AugAssign)) and isinstance(node.value, (ast.Tuple, ast.List)):
            items = node.value.elts
            if items and all(isinstance(item, ast.Constant) and isinstance(item.value, str) for item in items):
                # `NAMES += (…)` extends what an earlier `NAMES = (…)` bound.
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        kept = found.get(target.id, []) if isinstance(node, ast.AugAssign) else []
                        found[target.id] = kept + [item.value for item in items]
    return found


def dynamic_names(call: ast.Call, loops: dict[str, list[str]]) -> list[str]:
    """The module names an import_module() call can load: a string literal, or an f-string over a literal loop."""
    if not call.args:
        return []
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.JoinedStr) and len(arg.values) == 2:
        prefix, hole = arg.values
        if isinstance(prefix, ast.Constant) and isinstance(hole, ast.FormattedValue) \
                and isinstance(hole.value, ast.Name) and hole.value.id in loops:
            return [prefix.value + item for item in loops[hole.value.id]]
    return []


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every workbook module that `name` imports, at module level, inside functions, or through importlib."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    tuples = string_tuples(tree)
    # Loop variables that range over a literal tuple: `for name in COMMAND_MODULES: import_module(f"workbook.{name}")`.
    loops = {
        node.target.id: tuples[node.iter.id]
        for node in ast.walk(tree)
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name)
        and isinstance(node.iter, ast.Name) and node.iter.id in tuples
    }
    # Imports only a type checker runs (`if TYPE_CHECKING:`) never execute, so they cannot close a cycle.
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body for inner in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.module or "", node.level, name, is_package)
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            # `from . import sibling` loads the sibling, as `from .sibling import x` does, not the package again.
            found |= submodules or {target}
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "import_module":
                for dotted in dynamic_names(node, loops):
                    found.add(resolve(dotted.lstrip("."), len(dotted) - len(dotted.lstrip(".")), name, is_package))
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once, as the list of modules around it."""
    found, done = [], set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycle = trail[trail.index(node):]
            if not any(set(cycle) == set(seen) for seen in found):
                found.append(cycle + [node])
            return
        if node in done:
            return
        for neighbour in sorted(graph.get(node, ())):
            visit(neighbour, [*trail, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


def test_the_import_walk_sees_imports_made_through_importlib():
    """The walk follows cli's importlib loop over COMMAND_MODULES, so it would see a cycle hidden there."""
    graph = import_graph()
    loaded = {"workbook.doctor.command", "workbook.notebooks.jupyter", "workbook.learner.commands"}
    assert loaded <= graph["workbook.cli"]
    assert "workbook.doctor.pitfalls" in graph["workbook.doctor.command"]


def test_the_runner_has_no_import_cycles():
    """No chain of imports in workbook/, importlib's included, leads back to where it started."""
    assert cycles(import_graph()) == []


def test_nothing_but_the_entry_point_imports_the_command_line():
    """Only `python -m workbook` (workbook/__main__.py) imports workbook.cli."""
    importers = sorted(name for name, imported in import_graph().items() if "workbook.cli" in imported)
    assert importers == [ENTRY]


def test_the_cycle_finder_finds_a_cycle():
    """A graph with a loop through three modules is reported, once."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [sorted(set(cycle)) for cycle in cycles(graph)] == [["a", "b", "c"]]


def test_the_walk_covers_every_subpackage_and_every_module_cli_loads_by_name():
    """Each subpackage's modules are in the graph, and each of cli's COMMAND_MODULES is a module that exists."""
    graph = import_graph()
    for package in sorted(path.parent for path in PACKAGE.glob("*/__init__.py")):
        inside = {module_name(path) for path in package.glob("*.py")}
        assert inside and inside <= set(graph), package.name
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    loaded = {f"workbook.{name}" for name in string_tuples(tree)["COMMAND_MODULES"]}
    assert loaded <= set(graph), sorted(loaded - set(graph))
    assert loaded <= graph["workbook.cli"]
    assert {"workbook.classroom.room", "workbook.classroom.preflight"} <= loaded  # from `COMMAND_MODULES += …`


def test_a_subpackage_init_only_names_its_package_or_re_exports():
    """A subpackage's __init__.py holds a docstring and re-exports, nothing else."""
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), init
        for node in tree.body[1:]:
            names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            assert isinstance(node, ast.ImportFrom) and node.level == 1 or names == ["__all__"], \
                f"{init.relative_to(ROOT)}: {ast.unparse(node)[:60]}"


# A module may outgrow this many lines only when its docstring says why ("… about N lines on purpose: …").
LONGEST = 250


def test_a_module_over_250_lines_states_why_at_its_top():
    """The issue's rule for the layout: no module over about 250 lines without a reason stated at its top."""
    unexplained = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > LONGEST and not re.search(r"about \d+ lines on purpose: \w", docstring):
            unexplained.append(f"{name} ({lines} lines)")
    assert not unexplained, f"over {LONGEST} lines with no reason at the top: {', '.join(unexplained)}"
