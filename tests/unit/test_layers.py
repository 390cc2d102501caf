"""Arrows point down: each package imports only the layers below it, and no module imports itself back.

The layers, bottom up (README, "Architecture"):

- ``events`` (the event model, pure) and ``schemas`` (the Avro files): import nothing of the project;
- ``infra``: adapters to Kafka, PostgreSQL, Redis, tokens, metrics, settings, and the local stack;
- the services: ``projections`` (read models and the queries over them), ``stream_processors``,
  ``edge_ws``, ``ingest_workers``, then ``producers`` (the command side, which reads through
  ``projections``' queries);
- ``web``: the pages, and the app that joins them with the API.

The ``esports`` command is composed in ``pyproject.toml`` (entry points ``esports.commands``): each
service declares its own subcommands and ``infra.cli`` loads them by name, so no import runs upward.
Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED: dict[str, frozenset[str]] = {
    "events": frozenset(),
    "schemas": frozenset(),
    "infra": frozenset({"events", "schemas"}),
    "projections": frozenset({"events", "schemas", "infra"}),
    "stream_processors": frozenset({"events", "schemas", "infra"}),
    "edge_ws": frozenset({"events", "schemas", "infra"}),
    "ingest_workers": frozenset({"events", "schemas", "infra"}),
    "producers": frozenset({"events", "schemas", "infra", "projections"}),
    "web": frozenset({"events", "schemas", "infra", "projections", "producers"}),
}


def modules(root: Path = REPO) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ALLOWED:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, project module) for every import in ``path``: ``from a import b`` is ``a.b`` when that is a
    module, ``a`` otherwise."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            resolved = resolve(target)
            if resolved is not None and resolved != name:
                yield node.lineno, resolved


def graph(root: Path = REPO) -> dict[str, set[str]]:
    known = modules(root)
    return {name: {target for _, target in imports(name, path, known)} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward(root: Path = REPO) -> list[str]:
    known = modules(root)
    wrong = []
    for name, path in sorted(known.items()):
        package = name.split(".")[0]
        for line, target in imports(name, path, known):
            target_package = target.split(".")[0]
            if target_package != package and target_package not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(root)}:{line}: {package} imports {target}")
    return wrong


def test_no_package_imports_a_layer_above_it() -> None:
    wrong = upward()
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back() -> None:
    found = cycles(graph())
    assert not found, found


def test_the_layer_table_is_itself_without_a_cycle() -> None:
    assert cycles({package: set(below) for package, below in ALLOWED.items()}) == []


def test_a_cycle_and_an_upward_import_are_found(tmp_path: Path) -> None:
    for package in ALLOWED:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "events" / "a.py").write_text("from events import b\n")
    (tmp_path / "events" / "b.py").write_text("def f():\n    from events.a import g\n")
    (tmp_path / "infra" / "cli.py").write_text("from producers import server\n")
    (tmp_path / "producers" / "server.py").write_text("import infra\n")
    assert cycles(graph(tmp_path)) == [["events.a", "events.b"]]
    assert upward(tmp_path) == ["infra/cli.py:1: infra imports producers.server"]
