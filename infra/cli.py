"""`esports`: the one console entry point (the composition root of every command).

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

from events.codec import EventCodec, event_to_json
from events.topics import CATALOGUE, spec
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
from projections.rebuild_options import add_arguments as add_rebuild_arguments
from projections.replay_options import add_arguments as add_replay_arguments
from projections.report_options import add_arguments as add_report_arguments
from stream_processors.topology import FAMILIES

Command = Callable[[argparse.Namespace, Settings], int]


def _err(message: str) -> None:
    print(f"esports: {message}", file=sys.stderr)


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
    codec = EventCodec.load()
    seen, idle_since = 0, time.monotonic()
    async with EventPublisher(settings.kafka, codec, producer="infra.tail") as publisher:
        names = TopicNames(settings.kafka.topic_prefix)
        dead = DeadLetters(publisher, names.physical(spec("deadletter").name))
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
        _err(f"unknown topic {args.topic!r}; known: {', '.join(t.name for t in CATALOGUE)}")
        return 1
    return asyncio.run(_tail(args, settings))


# --- replay -------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Export a topic's decoded events in a time range as JSON lines, CSV or Parquet, schema beside."""
    from projections import replay

    return replay.run(args, settings)


# --- rebuild and report ------------------------------------------------------------------------


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild read models from the topics into a shadow schema and key prefix, then swap them in
    atomically; resumable (an interrupted run continues where it stopped)."""
    from projections import rebuild

    return rebuild.run(args, settings)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Print a match's analytics (audience, streams, chat per minute, moderation, polls), text or JSON."""
    from projections import report

    return report.run(args, settings)


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
        _err(str(e))
        return 1
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


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Run the web + REST API (uvicorn) until interrupted."""
    from producers import server

    return server.run(settings)


def cmd_processors(args: argparse.Namespace, settings: Settings) -> int:
    """Run the stream-processor worker (every agent family, or --only one) until interrupted."""
    from stream_processors import worker

    return worker.run(settings, args.only)


def cmd_projector(args: argparse.Namespace, settings: Settings) -> int:
    """Run the projectors into PostgreSQL and Redis until interrupted."""
    from projections import service

    return service.run(settings)


async def _grant_role(settings: Settings, username: str, role: str) -> int:
    from producers import roles
    from producers.services import Services

    async with Services.open(settings) as services:
        receipt = await roles.grant(services, username, role)
    if receipt is None:
        _err(f"no user named {username!r} (register first: POST /api/v1/auth/register)")
        return 1
    print(f"{username} is now {role} (event {receipt.event_id} at {receipt.position})")
    return 0


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    """Set a user's platform role from the command line (bootstraps the first admin)."""
    return asyncio.run(_grant_role(settings, args.username, args.role))


def cmd_edge(args: argparse.Namespace, settings: Settings) -> int:
    """Run a websocket edge node (chat, counts, polls) until SIGTERM; drains its clients on the way out."""
    from edge_ws import node

    return node.run(settings, settings.edge.second_port if args.second else args.port)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Run the ingest node (RTMP/SRT, transcoders, HLS origin and cache tier), or pull a feed."""
    if args.action == "pull":
        from ingest_workers import pull

        return pull.run(settings, args.stream, args.url)
    from ingest_workers import node

    return node.run(settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Push a test pattern with a clock and a tone to the demo channel until interrupted."""
    from ingest_workers import demo

    return demo.run(settings)


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
        _err(f"no benchmark named {args.names}; have {[s.stem for s in scripts]}")
        return 1
    for script in chosen:
        print(f"== bench/{script.name}", file=sys.stderr)
        code = subprocess.call(
            [sys.executable, str(script), *(["--quick"] if args.quick else [])], cwd=REPO_ROOT
        )
        if code:
            return code
    return 0


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esports", description="The eSports live platform.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(func.__doc__ or "").strip(), description=func.__doc__)
        p.set_defaults(func=func)
        return p

    infra = add("infra", cmd_infra)
    infra.add_argument("action", choices=["up", "down", "status"])
    infra.add_argument(
        "services",
        nargs="*",
        metavar="NAME",
        help="kafka, postgres, redis, api, processors, projector, edge, edge2, or kafka-N (one node of a "
        "local cluster) (default: infra; down: all)",
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
    add_replay_arguments(add("replay", cmd_replay))
    add_rebuild_arguments(add("rebuild", cmd_rebuild))
    add_report_arguments(add("report", cmd_report))
    add("api", cmd_api)
    processors = add("processors", cmd_processors)
    processors.add_argument(
        "--only",
        metavar="FAMILY",
        choices=FAMILIES,
        default=None,
        help=f"run one agent family in its own worker group ({', '.join(FAMILIES)}); "
        "start several to share its partitions (default: every family in one group)",
    )
    add("projector", cmd_projector)
    edge = add("edge", cmd_edge)
    where = edge.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=None, help="listen here instead of ESPORTS_EDGE__PORT")
    where.add_argument("--second", action="store_true", help="listen on ESPORTS_EDGE__SECOND_PORT")
    ingest = add("ingest", cmd_ingest)
    ingest_actions = ingest.add_subparsers(dest="action", metavar="ACTION")
    pull = ingest_actions.add_parser("pull", help="transcode an external feed (rtmp://, srt://, HLS, file)")
    pull.add_argument("--stream", required=True, help="stream id the feed is published as")
    pull.add_argument("url")
    add("demo", cmd_demo)
    users = add("users", cmd_users)
    users.add_argument("action", choices=["role"], help="role: set USERNAME's platform role")
    users.add_argument("username")
    users.add_argument("role", choices=["viewer", "streamer", "admin"])
    add("config", cmd_config)
    bench = add("bench", cmd_bench)
    bench.add_argument("names", nargs="*", help="benchmark names (files in bench/ without .py)")
    bench.add_argument("--quick", action="store_true", help="fewer, shorter runs (a smoke check)")
    return parser


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
        _err(f"{e} (is Kafka running? `esports infra status`)")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
