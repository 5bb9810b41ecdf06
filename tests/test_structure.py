"""The shape of node/, checked from its source: no import cycles, protobuf only at the wire
boundary, the store used only through its public surface."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in NODE.rglob("*.py")}


def trees() -> Iterator[tuple[str, ast.Module]]:
    for name, path in sorted(MODULES.items()):
        yield name, ast.parse(path.read_text(), filename=str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    """Every module an import statement names, anywhere in the file (lazy imports inside a
    function and imports for type checking included)."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            yield from (a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            yield n.module
            yield from (f"{n.module}.{a.name}" for a in n.names)


def resolve(target: str) -> str | None:
    """The node module an imported name belongs to (its longest module prefix)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, tree in trees():
        for target in imported(tree):
            found = resolve(target)
            if found is None or found == name:
                continue
            graph[name].add(found)
            # Importing node.a.b runs node/a/__init__.py first, unless the importer is inside
            # node.a (then that package is already being imported).
            parts = found.split(".")
            for end in range(2, len(parts)):
                package = ".".join(parts[:end])
                if package in MODULES and not name.startswith(package + "."):
                    graph[name].add(package)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
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


def test_node_has_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# Protobuf is converted at one boundary (node/wire.py); these work on domain types only.
NO_PROTOBUF = ("node.delivery", "node.operations", "node.store", "node.policy")


def test_delivery_operations_store_and_policy_do_not_import_accord_v1() -> None:
    offenders = [
        (name, target)
        for name, tree in trees()
        if name.startswith(NO_PROTOBUF)
        for target in imported(tree)
        if target == "accord" or target.startswith("accord.")
    ]
    assert offenders == []


def private_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """`x.store._y`, `self._store._y`, `store._y`: a store's private parts; and aiosqlite's
    (`._execute`, `._conn`)."""
    for n in ast.walk(tree):
        if not isinstance(n, ast.Attribute) or not n.attr.startswith("_"):
            continue
        if n.attr.startswith("__"):
            continue
        owner = n.value
        owner_name = (
            owner.attr
            if isinstance(owner, ast.Attribute)
            else owner.id
            if isinstance(owner, ast.Name)
            else ""
        )
        if owner_name.lstrip("_").endswith("store") or n.attr in ("_execute", "_conn"):
            yield n.lineno, ast.unparse(n)


def test_only_the_store_touches_its_own_private_parts() -> None:
    offenders = [
        (name, line, text)
        for name, tree in trees()
        if not name.startswith("node.store")
        for line, text in private_uses(tree)
    ]
    assert offenders == []


def test_only_the_writer_touches_aiosqlite_internals() -> None:
    offenders = [
        (name, line, text)
        for name, tree in trees()
        if name != "node.store.writer"
        for line, text in private_uses(tree)
        if text.endswith(("._execute", "._conn"))
    ]
    assert offenders == []


def test_the_private_use_check_sees_them() -> None:
    tree = ast.parse("self._store._insert(m)\nnode.store._rconn\nconn._execute(f, conn._conn)\n")
    assert sorted(text for _, text in private_uses(tree)) == [
        "conn._conn",
        "conn._execute",
        "node.store._rconn",
        "self._store._insert",
    ]
