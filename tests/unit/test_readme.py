"""The README is the user's door: keep its configuration and topic tables true to the code."""

from __future__ import annotations

import re

from events.topics import CATALOGUE, FOREVER
from infra.settings import REPO_ROOT, Settings

README = (REPO_ROOT / "README.md").read_text()
DAY_MS = 24 * 60 * 60 * 1000


def _env_names(model: type, prefix: str = "ESPORTS_") -> list[str]:
    names = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            names.extend(_env_names(annotation, f"{prefix}{name.upper()}__"))
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [name for name in _env_names(Settings) if f"`{name}`" not in README]
    assert not missing, f"add these to the README's configuration table: {missing}"


def test_every_setting_has_a_description() -> None:
    def undocumented(model: type) -> list[str]:
        out = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                out.extend(undocumented(annotation))
            elif not field.description:
                out.append(name)
        return out

    assert not undocumented(Settings)


def _retention_words(retention_ms: int | None) -> str:
    if retention_ms == FOREVER:
        return "forever"
    assert retention_ms is not None and retention_ms % DAY_MS == 0
    days = retention_ms // DAY_MS
    return f"{days} day" if days == 1 else f"{days} days"


def test_the_topic_table_matches_the_catalogue() -> None:
    rows = {
        name: (writers, retention)
        for name, writers, retention in re.findall(
            r"^\| `([a-z._]+)` \|.*\| ([^|]+) \| ([^|]+) \|$", README, flags=re.MULTILINE
        )
    }
    for topic in CATALOGUE:
        assert topic.name in rows, f"README topic table lacks {topic.name}"
        writers, retention = rows[topic.name]
        assert retention.strip() == _retention_words(topic.retention_ms), topic.name
        declared = [topic.owner, *(gateway.module for gateway in topic.gateways)]
        assert re.findall(r"`([a-z_.]+)`", writers) == declared, topic.name


def test_the_folder_table_names_files_that_exist() -> None:
    """Each row of the architecture's folder table: the folder exists, and every file or folder it names
    in backticks (``kafka/``, ``publisher.py``) is somewhere under it."""
    rows = re.findall(r"^\| `([a-z_]+)/` \| (.+) \|$", README, flags=re.MULTILINE)
    assert {folder for folder, _ in rows} >= {
        "events", "schemas", "infra", "producers", "stream_processors", "projections", "edge_ws",
        "ingest_workers", "web", "tests", "bench",
    }  # fmt: skip
    for folder, text in rows:
        root = REPO_ROOT / folder
        assert root.is_dir(), folder
        for name in re.findall(r"`([A-Za-z_.-]+(?:\.py|\.md|\.json|/))`", text):
            found = root / name if name.endswith("/") else None
            if found is not None and found.is_dir():
                continue
            matches = [p for p in root.rglob(name.rstrip("/")) if ".venv" not in p.parts]
            assert matches, f"README folder table: {folder}/ names {name}, which is not there"
