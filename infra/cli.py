"""`esports`: the one console entry point.

The commands of the platform itself (stack, topics, tail, config, bench) are here; each service
declares its own (``esports api``, ``processors``, ``rebuild``...) as a :class:`Command` in its
``cli`` module, listed under the entry points ``esports.commands`` of ``pyproject.toml``. That table
is the composition root: this module loads the commands by name and imports no service.

Each subcommand builds Settings -> clients -> components and runs them; nothing is built at import.
Output meant for pipes goes to stdout; progress and errors go to stderr. Exit codes: 0 success,
1 failure, 2 usage error (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from events.codec import EventCodec, event_to_json
from events.topics import CATALOGUE, Topic, spec
from infra import logs
from infra.kafka import (
    ConsumedEvent,
    DeadLetters,
    EventConsumer,
    EventPublisher,
    KafkaError,
    TopicAdmin,
    TopicNames,
    topic_configs,
)
from infra.local_secrets import ensure_local_secrets
from infra.settings import REPO_ROOT, Settings
from schemas import SCHEMAS_DIR

Run = Callable[[argparse.Namespace, Settings], int]
COMMANDS_GROUP = "esports.commands"


@dataclass(frozen=True, slots=True)
class Command:
    """One ``esports`` subcommand: its name, what runs it (its docstring is the help) and its arguments."""

    name: str
    run: Run
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


def fail(message: str) -> int:
    """Say what went wrong on stderr; returns the exit code 1."""
    print(f"esports: {message}", file=sys.stderr)
    return 1


# --- topics -------------------------------------------------------------------------------------


async def _ensure_topics(settings: Settings) -> list[str]:
    async with TopicAdmin(settings.kafka) as admin:
        return await admin.ensure()


async def _topics_create(settings: Settings) -> int:
    created = await _ensure_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    for topic in CATALOGUE:
        physical = names.physical(topic.name)
        print(f"{'created' if physical in created else 'exists '} {physical}")
    return 0


async def _topics_list(settings: Settings) -> int:
    async with TopicAdmin(settings.kafka) as admin:
        states = {s.name: s for s in await admin.states()}
    names = TopicNames(settings.kafka.topic_prefix)
    print(f"{'topic':<22} {'partitions':>10}  {'key':<10} {'owner':<18} config")
    for topic in CATALOGUE:
        state = states[names.physical(topic.name)]
        partitions = str(state.partitions) if state.exists else "missing"
        config = ",".join(f"{k}={v}" for k, v in topic_configs(topic, settings.kafka).items())
        print(f"{state.name:<22} {partitions:>10}  {topic.key_field or '-':<10} {topic.owner:<18} {config}")
    return 0 if all(s.exists for s in states.values()) else 1


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    """Create or list the catalogue's topics."""
    action = _topics_create if args.action == "create" else _topics_list
    return asyncio.run(action(settings))


# --- tail ---------------------------------------------------------------------------------------


def _json_line(consumed: ConsumedEvent) -> str:
    return json.dumps(
        {
            "topic": consumed.position.topic,
            "partition": consumed.position.partition,
            "offset": consumed.position.offset,
            "key": consumed.key.decode(errors="replace") if consumed.key else None,
            "event": event_to_json(consumed.event),
        },
        ensure_ascii=False,
    )


async def _tail(args: argparse.Namespace, settings: Settings) -> int:
    codec = EventCodec.load(SCHEMAS_DIR)
    seen, idle_since = 0, time.monotonic()
    async with EventPublisher(settings.kafka, codec, producer="infra.tail") as publisher:
        names = TopicNames(settings.kafka.topic_prefix)
        dead = DeadLetters(publisher, names.physical(spec(Topic.DEADLETTER).name))
        consumer = EventConsumer(
            settings.kafka,
            codec,
            topics=[args.topic],
            group_id=None,
            dead_letters=dead,
            from_beginning=args.from_beginning,
        )
        async with consumer:
            async for batch in consumer.batches():
                for consumed in batch:
                    print(_json_line(consumed), flush=True)
                    seen += 1
                    if args.max and seen >= args.max:
                        return 0
                if batch:
                    idle_since = time.monotonic()
                elif args.idle_timeout and time.monotonic() - idle_since > args.idle_timeout:
                    return 0
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Print a topic's decoded events as JSON lines."""
    try:
        spec(args.topic)
    except KeyError:
        return fail(f"unknown topic {args.topic!r}; known: {', '.join(t.name for t in CATALOGUE)}")
    return asyncio.run(_tail(args, settings))


# --- stack and platform -------------------------------------------------------------------------


def cmd_infra(args: argparse.Namespace, settings: Settings) -> int:
    """Run the local Kafka, PostgreSQL, Redis and the app services (`esports infra up|down|status`)."""
    from infra import stack

    if args.action == "up":
        ensure_local_secrets()
    flags = ["--apps"] * args.apps + ["--all"] * args.all
    return stack.main([args.action, *flags, *args.services], settings=settings)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Start the whole platform locally and print what runs where."""
    from infra import stack

    ensure_local_secrets()
    try:
        stack.up(settings)
        created = asyncio.run(_ensure_topics(settings))
        print(
            f"topics: {len(created)} created, {len(CATALOGUE) - len(created)} already there", file=sys.stderr
        )
        # The apps after the topics they use; the demo push after the API and ingest it talks to.
        stack.up_apps(settings, [app for app in stack.APPS if app != "demo"])
        stack.up_apps(settings, ["demo"])
    except stack.StackError as e:
        return fail(str(e))
    print("\nServices and logs:", file=sys.stderr)
    stack.main(["status", "--all"])
    print(
        f"\nThe demo channel {settings.ingest.demo_channel!r} is live within seconds:"
        f"\n  open:       {settings.api.public_url}/  (the web pages: live now, then the stream page)"
        f"\n  live now:   {settings.api.public_url}/api/v1/streams/live"
        f"\n  HLS:        {settings.ingest.public_hls_url}/<stream_id>/master.m3u8 (ffplay or any HLS player)"
        f"\n  chat edge:  ws://{settings.edge.host}:{settings.edge.port} (protocol: edge_ws/PROTOCOL.md)"
        f"\n  API docs:   {settings.api.public_url}/docs"
    )
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop everything `esports up` started."""
    from infra import stack

    return stack.main(["down"])


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Show what runs where."""
    from infra import stack

    return stack.main(["status", "--all"])


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective settings as ESPORTS_* variables (secrets masked)."""
    for name, value in _flatten(settings.model_dump(mode="json")):
        secret = any(word in name.lower() for word in ("password", "secret", "token"))
        shown = "****" if secret and value else value
        print(f"ESPORTS_{name.upper()}={shown}")
    return 0


def _flatten(data: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{prefix}{key}__"))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run the benchmarks in bench/ (all, or the ones named)."""
    scripts = [s for s in sorted((REPO_ROOT / "bench").glob("*.py")) if not s.stem.startswith("_")]
    chosen = [s for s in scripts if not args.names or s.stem in args.names]
    if not chosen:
        return fail(f"no benchmark named {args.names}; have {[s.stem for s in scripts]}")
    for script in chosen:
        print(f"== bench/{script.name}", file=sys.stderr)
        code = subprocess.call(
            [sys.executable, str(script), *(["--quick"] if args.quick else [])], cwd=REPO_ROOT
        )
        if code:
            return code
    return 0


# --- parser -------------------------------------------------------------------------------------


def build_parser(commands: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """The parser of the platform's own commands and of ``commands`` (default: every service's)."""
    parser = argparse.ArgumentParser(prog="esports", description="The eSports live platform.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, run: Run) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(run.__doc__ or "").strip().split("\n\n")[0], description=run.__doc__)
        p.set_defaults(func=run)
        return p

    infra = add("infra", cmd_infra)
    infra.add_argument("action", choices=["up", "down", "status"])
    infra.add_argument(
        "services",
        nargs="*",
        metavar="NAME",
        help="kafka, postgres, redis, api, processors, projector, edge, edge2, prometheus, or kafka-N (one "
        "node of a local cluster) (default: infra, and prometheus when observing; down: all)",
    )
    scope = infra.add_mutually_exclusive_group()
    scope.add_argument("--apps", action="store_true", help="the application services")
    scope.add_argument("--all", action="store_true", help="the infrastructure, then the application services")
    _brokers_flag(infra)
    _brokers_flag(add("up", cmd_up))
    add("down", cmd_down)
    add("status", cmd_status)
    topics = add("topics", cmd_topics)
    topics.add_argument("action", choices=["create", "list"])
    tail = add("tail", cmd_tail)
    tail.add_argument("topic", help="catalogue topic name, e.g. streams or chat.messages")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest retained event")
    tail.add_argument("--max", type=int, default=0, help="stop after N events (default: follow forever)")
    tail.add_argument("--idle-timeout", type=float, default=0, help="stop after S seconds without events")
    for command in service_commands() if commands is None else commands:
        command_parser = add(command.name, command.run)
        if command.arguments is not None:
            command.arguments(command_parser)
    add("config", cmd_config)
    bench = add("bench", cmd_bench)
    bench.add_argument("names", nargs="*", help="benchmark names (files in bench/ without .py)")
    bench.add_argument("--quick", action="store_true", help="fewer, shorter runs (a smoke check)")
    return parser


def service_commands() -> list[Command]:
    """The services' commands, as ``pyproject.toml`` lists them (entry points ``esports.commands``)."""
    found = entry_points(group=COMMANDS_GROUP)
    if not found:
        raise SystemExit(
            "esports: no service commands are installed (entry points esports.commands); "
            "reinstall the project: make install"
        )
    commands = []
    for entry in found:
        command = entry.load()
        if not isinstance(command, Command) or command.name != entry.name:
            raise SystemExit(f"esports: entry point {entry.name} = {entry.value} is not its Command")
        commands.append(command)
    return commands


def _brokers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--brokers",
        type=int,
        choices=range(1, 10),
        metavar="N",
        help="local Kafka brokers: 3 runs a KRaft cluster on loopback (= ESPORTS_KAFKA__BROKERS=N; "
        "export it for later commands too)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "brokers", None):
        # The flag is the setting, for this command and every service it starts (they inherit it).
        os.environ["ESPORTS_KAFKA__BROKERS"] = str(args.brokers)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        return int(args.func(args, settings))
    except KafkaError as e:
        return fail(f"{e} (is Kafka running? `esports infra status`)")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m infra.cli` runs this file as __main__; the services' commands import `infra.cli`, a
    # second copy with its own Command class. Run that copy, so there is one Command.
    from infra.cli import main as main_of_module

    sys.exit(main_of_module())
