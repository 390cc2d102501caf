"""``events/`` is the bottom layer and stays pure: it imports the standard library, itself, and the
Avro library that defines its wire format, nothing else (no project package, no client of a broker,
database, cache or socket). ``tests/unit/test_layers.py`` checks the arrows between project packages."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import events

ALLOWED = frozenset({"events", "fastavro"}) | frozenset(sys.stdlib_module_names)
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
def test_events_module_imports_only_the_standard_library_and_avro(module: Path) -> None:
    assert imported_roots(module.read_text(encoding="utf-8")) - ALLOWED == set()


def test_the_check_sees_every_kind_of_import() -> None:
    source = "import aiokafka.producer\nfrom redis.asyncio import Redis\nimport json\n"
    assert imported_roots(source) - ALLOWED == {"aiokafka", "redis"}
    assert imported_roots("def f():\n    from schemas import SCHEMAS_DIR\n") - ALLOWED == {"schemas"}
    assert imported_roots("from infra.settings import Settings\n") - ALLOWED == {"infra"}


def test_every_module_is_checked() -> None:
    names = {p.name for p in MODULES}
    assert {"base.py", "codec.py", "topics.py", "chat.py", "streams.py"} <= names
