"""Read a project's consumers as text and find the async mistakes: a coroutine never awaited, a blocking call,
a synchronous ORM query in an async handler.

One source for the doctor (`doctor PATH`) and the learner's step 8 and 10 checks; it only parses, it never imports.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..registry import project_files

# On an async consumer these return coroutines: called without await, they never run.
CONSUMER_COROUTINES = {"accept", "send", "send_json", "close", "base_send"}
# Calls that hold the thread; on the event loop they hold every connection of the process.
BLOCKING = {"time.sleep", "requests.get", "requests.post", "requests.put", "requests.delete", "requests.request",
            "urllib.request.urlopen", "urlopen", "subprocess.run", "subprocess.check_output"}
# Manager and queryset methods that run their query at once: Django refuses them on the event loop
# (SynchronousOnlyOperation); their async twins are the same names with an `a` in front.
SYNC_ORM = {"create", "get", "get_or_create", "update_or_create", "bulk_create", "count", "exists", "first", "last",
            "delete", "update", "aggregate", "earliest", "latest", "in_bulk"}


@dataclass(frozen=True)
class Mistake:
    kind: str  # "unawaited", "blocking" or "sync-orm"
    file: str
    line: int
    method: str  # Class.method
    call: str  # the dotted name called

    def __str__(self) -> str:
        if self.kind == "unawaited":
            return f"{self.file}, line {self.line}: {self.method}() calls {self.call}(…) without await"
        if self.kind == "sync-orm":
            return (f"{self.file}, line {self.line}: async {self.method}() runs {self.call}, a synchronous query "
                    "Django refuses on the event loop (SynchronousOnlyOperation)")
        return f"{self.file}, line {self.line}: async {self.method}() calls {self.call}(…), which blocks the event loop"


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Map names brought in with `from x import y` to their dotted origin (sleep -> time.sleep)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _is_async_consumer(cls: ast.ClassDef) -> bool:
    return any(_dotted(base).rpartition(".")[2].startswith("Async") for base in cls.bases)


def _unawaited_and_blocking(cls: ast.ClassDef, imported: dict[str, str], name: str):
    """Yield (kind, line, method, call) for each mistake in the class's methods."""
    async_class = _is_async_consumer(cls)
    for method in cls.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        is_async = isinstance(method, ast.AsyncFunctionDef)
        for node in ast.walk(method):
            # A bare call statement: whatever it returns, a coroutine included, is dropped.
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                call = _dotted(node.value.func)
                layer_call = call.startswith("self.channel_layer.")
                own_coroutine = async_class and is_async and call.removeprefix("self.") in CONSUMER_COROUTINES
                if layer_call or own_coroutine:
                    yield "unawaited", node.lineno, f"{name}.{method.name}", call
            if is_async and isinstance(node, ast.Call):
                call = _dotted(node.func)
                call = imported.get(call, call)
                if call in BLOCKING:
                    yield "blocking", node.lineno, f"{name}.{method.name}", call
        if is_async:
            for line, query in _sync_queries(method):
                yield "sync-orm", line, f"{name}.{method.name}", query


def _own_nodes(function: ast.AST):
    """Walk a function's body without entering nested functions (a nested def may run in a thread)."""
    for child in ast.iter_child_nodes(function):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _own_nodes(child)


def _queryset_text(node: ast.AST) -> str:
    """Return the source of an expression that goes through a model manager (`….objects…`), shortened; else ''."""
    text = ast.unparse(node)
    if not re.search(r"\.objects\b", text):
        return ""
    while "(" in text:  # innermost arguments first, until none are left
        shorter = re.sub(r"\([^()]*\)", "\0", text)
        if shorter == text:
            break
        text = shorter
    return text.replace("\0", "(…)")


def _sync_queries(method: ast.AsyncFunctionDef):
    """Yield (line, shown call) for each synchronous ORM query an async method runs on the event loop."""
    for node in _own_nodes(method):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SYNC_ORM:
            if _queryset_text(node.func.value):
                yield node.lineno, _queryset_text(node)
        elif isinstance(node, ast.For) and _queryset_text(node.iter):
            yield node.lineno, f"for … in {_queryset_text(node.iter)}"
        elif isinstance(node, ast.Call) and _dotted(node.func) in {"list", "len"} and node.args \
                and _queryset_text(node.args[0]):
            yield node.lineno, _queryset_text(node)


def scan(project: Path) -> list[Mistake]:
    """Return every unawaited coroutine, blocking call and sync ORM query in a project's async methods."""
    project = Path(project)
    found = []
    for relative in project_files(project):
        if not relative.endswith(".py") or "migrations" in relative.split("/"):
            continue
        try:
            tree = ast.parse((project / relative).read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue  # a file that does not parse is reported by the compile check
        imported = _imported_names(tree)
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            for kind, line, method, call in _unawaited_and_blocking(cls, imported, cls.name):
                found.append(Mistake(kind, relative, line, method, call))
    return found
