"""The topic contract checked on the source: who writes each topic, and that topics are named, not spelled.

A module *writes* a topic when it builds an event of one of the topic's types (``ChatMessageSent(...)``,
a constructor class method such as ``ChatMessageSent.of(...)``, a class chosen by a conditional
expression and called, or a factory of ``events`` whose return annotation names the type), or when it
publishes raw bytes to it (``publish_raw(Topic.X, ...)``). Services publish what they build, so building
is where a write starts; a module that builds an event only to read it (a cause rebuilt for a decision)
says so on that line with ``# contract: not published (<why>)``.

A module may write a topic if it is inside the topic's ``owner`` package or is one of its ``gateways``.

A topic name *spelled* is a string literal equal to a catalogue name: a dotted one (``"chat.messages"``)
anywhere, a plain one (``"streams"``) where a topic is expected (an argument of ``physical``, ``logical``,
``spec``, ``publish_raw``, ``partitions`` or ``DeadLetters``; the value of ``topics=``/``sources=``; a
name or attribute called ``*topic*``/``*source*``; a list or tuple passed positionally to a call; or a
comparison with ``.logical(...)``/``.topic``). Route tags, dictionary keys and family names that happen
to equal a topic name are not topic positions.
"""

from __future__ import annotations

import ast
import re
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from events.topics import CATALOGUE, TopicSpec

PACKAGES = ("producers", "stream_processors", "projections", "edge_ws", "ingest_workers", "web", "infra")
NOT_PUBLISHED = "# contract: not published"
TOPIC_CALLS = frozenset({"physical", "logical", "spec", "publish_raw", "partitions", "DeadLetters"})
TOPIC_KEYWORDS = frozenset({"topic", "topics", "source", "sources"})
TOPIC_NAME = re.compile(r"topic|source", re.IGNORECASE)
NOT_CONSTRUCTORS = frozenset({"event_type", "__name__", "schema"})


@dataclass(frozen=True, slots=True)
class Write:
    module: str
    line: int
    event_type: str
    topic: str


@dataclass(frozen=True, slots=True)
class Finding:
    module: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.message}"


def event_classes(catalogue: Iterable[TopicSpec] = CATALOGUE) -> dict[str, TopicSpec]:
    return {cls.__name__: topic for topic in catalogue for cls in topic.event_types}


def event_factories(catalogue: Iterable[TopicSpec] = CATALOGUE) -> dict[str, TopicSpec]:
    """Functions of the ``events`` modules that build events, by name: their return annotation names one
    event type (``-> list[ViewerPresenceBatch]``)."""
    import importlib

    classes = event_classes(catalogue)
    found: dict[str, TopicSpec] = {}
    modules = {cls.__module__ for topic in catalogue for cls in topic.event_types}
    for name in modules:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not callable(value) or isinstance(value, type) or getattr(value, "__module__", "") != name:
                continue
            returned = str(typing.get_type_hints(value).get("return", ""))
            built = [cls for cls in re.findall(r"\w+", returned) if cls in classes]
            if built:
                found[attr] = classes[built[0]]
    return found


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _class_names(node: ast.expr) -> Iterator[str]:
    """Event class names a called expression may evaluate to (a name, ``a.B``, ``A if c else B``)."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.IfExp):
        yield from _class_names(node.body)
        yield from _class_names(node.orelse)


def writes(source: str, module: str, catalogue: Iterable[TopicSpec] = CATALOGUE) -> list[Write]:
    """Every write of ``module`` (its source given), in line order."""
    catalogue = tuple(catalogue)
    classes, factories = event_classes(catalogue), event_factories(catalogue)
    lines = source.splitlines()
    tree = ast.parse(source)
    chosen: dict[str, list[str]] = {}  # local names bound to a conditional choice of event classes
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.IfExp):
            names = [n for n in _class_names(node.value) if n in classes]
            for target in node.targets:
                if names and isinstance(target, ast.Name):
                    chosen[target.id] = names
    found: list[Write] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or NOT_PUBLISHED in lines[node.lineno - 1]:
            continue
        func = node.func
        names: list[str] = []
        if isinstance(func, ast.Name) and func.id in chosen:
            names = chosen[func.id]
        elif isinstance(func, ast.Attribute) and func.attr not in NOT_CONSTRUCTORS:
            # ChatMessageSent.of(...) or chat.ChatMessageSent(...)
            names = [n for n in (_called_name(func.value), func.attr) if n in classes]
        if not names:
            names = [n for n in _class_names(func) if n in classes]
        for name in names:
            found.append(Write(module, node.lineno, name, str(classes[name].name)))
        called = _called_name(func)
        if called in factories and not names:
            topic = factories[called]
            found.append(Write(module, node.lineno, f"{called}()", str(topic.name)))
        if called == "publish_raw" and node.args:
            topic_name = _topic_member(node.args[0])
            if topic_name is not None:
                found.append(Write(module, node.lineno, "raw bytes", topic_name))
    return sorted(found, key=lambda w: w.line)


def _topic_member(node: ast.expr) -> str | None:
    """``Topic.CHAT_MESSAGES`` (possibly inside ``names.physical(...)``) -> ``"chat.messages"``."""
    from events.topics import Topic

    for child in ast.walk(node):
        if (
            isinstance(child, ast.Attribute)
            and isinstance(child.value, ast.Name)
            and child.value.id == "Topic"
        ):
            member = Topic.__members__.get(child.attr)
            if member is not None:
                return str(member)
    return None


def undeclared(write: Write, catalogue: Iterable[TopicSpec] = CATALOGUE) -> bool:
    topic = next(t for t in catalogue if t.name == write.topic)
    owned = write.module == topic.owner or write.module.startswith(topic.owner + ".")
    return not owned and write.module not in {g.module for g in topic.gateways}


def spelled_topics(source: str, module: str, catalogue: Iterable[TopicSpec] = CATALOGUE) -> list[Finding]:
    """Topic names written as string literals where the code names a topic."""
    names = {str(t.name) for t in catalogue}
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found: list[tuple[int, int, Finding]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names):
            continue
        if "." in node.value or _in_topic_position(node, parents):
            message = f"topic {node.value!r} spelled: use events.topics.Topic"
            found.append((node.lineno, node.col_offset, Finding(module, node.lineno, message)))
    return [finding for *_, finding in sorted(found, key=lambda f: f[:2])]


def _in_topic_position(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    child, parent = node, parents.get(node)
    while parent is not None and not isinstance(parent, ast.stmt):
        if isinstance(parent, ast.Dict) and child in parent.keys:
            return False
        if isinstance(parent, ast.keyword):
            return parent.arg in TOPIC_KEYWORDS
        if isinstance(parent, ast.Call):
            if _called_name(parent.func) in TOPIC_CALLS and child in parent.args:
                return True
            return isinstance(child, ast.List | ast.Tuple | ast.Set) and child in parent.args
        if isinstance(parent, ast.Compare):
            text = ast.unparse(parent)
            return ".logical(" in text or ".topic" in text
        child, parent = parent, parents.get(parent)
    if isinstance(parent, ast.Assign | ast.AnnAssign):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        return any(TOPIC_NAME.search(ast.unparse(target)) for target in targets)
    return False


def module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def sources(root: Path, packages: Iterable[str] = PACKAGES) -> Iterator[tuple[str, str]]:
    """(module, source) of every module of the service packages."""
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            yield module_name(path, root), path.read_text()


def check(root: Path, catalogue: Iterable[TopicSpec] = CATALOGUE) -> list[Finding]:
    """Every undeclared writer and every spelled topic name under ``root``."""
    catalogue = tuple(catalogue)
    findings: list[Finding] = []
    for module, source in sources(root):
        for write in writes(source, module, catalogue):
            if undeclared(write, catalogue):
                findings.append(
                    Finding(module, write.line, f"writes {write.topic} ({write.event_type}) undeclared")
                )
        findings.extend(spelled_topics(source, module, catalogue))
    return findings


__all__ = ["Finding", "Write", "check", "spelled_topics", "undeclared", "writes"]
