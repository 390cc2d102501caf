"""``events/`` stays pure: no broker, database, cache or websocket client is imported there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import events

FORBIDDEN = {"aiokafka", "faust", "psycopg", "psycopg2", "psycopg_pool", "redis", "websockets"}
EVENTS_DIR = Path(events.__file__).resolve().parent
MODULES = sorted(EVENTS_DIR.rglob("*.py"))


def imported_roots(source: str) -> set[str]:
    """Top-level package names a module imports (anywhere in it, including inside functions)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(EVENTS_DIR)))
def test_events_module_imports_no_infrastructure(module: Path) -> None:
    assert not imported_roots(module.read_text(encoding="utf-8")) & FORBIDDEN


def test_the_check_sees_imports() -> None:
    assert imported_roots("import aiokafka.producer\nfrom redis.asyncio import Redis\n") == {
        "aiokafka",
        "redis",
    }
    assert imported_roots("def f():\n    import faust\n") == {"faust"}


def test_every_module_is_checked() -> None:
    names = {p.name for p in MODULES}
    assert {"base.py", "codec.py", "topics.py", "chat.py", "streams.py"} <= names
