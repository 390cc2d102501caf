"""A chaos run from start to verdict: the platform, the load, the nemesis's plan, the checker, the table.

``run(settings, plan)`` starts the private platform (tests/chaos/platform.py), sets up a live stream
with a streamer, chatters and viewers, runs the load (tests/chaos/load.py) while the nemesis injects
`plan` (tests/chaos/nemesis.py), stops the load (owed registrations are retried until they succeed),
waits for the pipelines to drain, checks the log (tests/chaos/checker.py), stops the projectors,
rebuilds the read models from the log and compares, and returns a `Report` whose `table()` is what
``make chaos`` prints.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.codec import EventCodec
from events.ingest import IngestConnected, IngestProtocol
from infra.kafka import EventPublisher
from infra.redis import make_client
from infra.settings import Settings
from projections.database import make_pool
from schemas import SCHEMAS_DIR
from tests.chaos.checker import Verdict, check_log, differences
from tests.chaos.load import Api, EdgeClient, Load, User
from tests.chaos.nemesis import Fault, Nemesis, Prober
from tests.chaos.platform import Platform, esports, infrastructure
from tests.integration.projections_support import dump_tables, end_positions
from tests.integration.test_rebuild_support import dump_keys, wait_applied

Step = tuple[float, Callable[[Nemesis], Coroutine[Any, Any, Fault]]]
DRAIN_TIMEOUT_S = 60.0


def _kill(app: str) -> Callable[[Nemesis], Coroutine[Any, Any, Fault]]:
    return lambda nemesis: nemesis.kill_app(app)


def short_plan() -> list[Step]:
    """One fault of each kind within about 50 s (the variant inside `make test`)."""
    return [
        (5, lambda n: n.kill_broker(down_s=5)),
        (12, lambda n: n.kill_app("processors-1", down_s=2)),
        (20, lambda n: n.kill_app("projector-1", down_s=2)),
        (26, lambda n: n.kill_app("edge-1", down_s=2)),
        (32, lambda n: n.pause_broker(10)),
    ]


def long_plan(minutes: float) -> list[Step]:
    """A broker killed every 30 s (leader first), one tier process killed between two broker kills,
    a broker paused every 2 minutes, for `minutes`."""
    steps: list[Step] = []
    apps = ["processors-1", "projector-1", "edge-1", "processors-2", "projector-2", "edge-2"]
    for cycle in range(int(minutes * 2)):
        at = 5 + cycle * 30
        steps.append((at, lambda n: n.kill_broker()))
        if cycle % 4 == 3:
            steps.append((at + 14, lambda n: n.pause_broker(12)))
        else:
            app = apps[cycle % len(apps)]
            steps.append((at + 15, _kill(app)))
    return steps


@dataclass
class Report:
    faults: list[Fault]
    verdict: Verdict
    projection_differences: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return self.verdict.clean and not self.projection_differences

    def table(self) -> str:
        v = self.verdict
        kinds = defaultdict(list)
        for fault in self.faults:
            kinds[fault.kind].append(fault.recovered_after_s)
        lines = [
            f"chaos run: {self.seconds:.0f} s of load, {len(self.faults)} faults injected",
            "",
            f"{'fault':<18}{'count':>6}{'recovery p50':>14}{'max':>8}",
        ]
        for kind, times in sorted(kinds.items()):
            known = [t for t in times if t is not None]
            p50 = f"{statistics.median(known):.1f} s" if known else "-"
            worst = f"{max(known):.1f} s" if known else "-"
            unrecovered = len(times) - len(known)
            lines.append(
                f"{kind:<18}{len(times):>6}{p50:>14}{worst:>8}"
                + (f"  ({unrecovered} never)" if unrecovered else "")
            )
        lines += [
            "",
            f"{'operation':<12}{'acknowledged':>13}{'lost':>6}{'duplicated':>11}{'reordered':>10}"
            f"{'in doubt':>10}",
        ]
        for kind in ("chat", "vote", "register"):
            lines.append(
                f"{kind:<12}{v.acknowledged[kind]:>13}{v.lost[kind]:>6}{v.duplicated[kind]:>11}"
                f"{v.reordered[kind]:>10}{v.indeterminate[kind]:>10}"
            )
        lines.append("")
        lines.append(
            f"tallies equal to the recount: {'yes' if not any('tally' in p for p in v.problems) else 'NO'}"
        )
        lines.append(
            "read models equal to a clean replay: "
            + (
                "yes"
                if not self.projection_differences
                else f"NO ({len(self.projection_differences)} differ)"
            )
        )
        for name, value in self.counts.items():
            lines.append(f"{name}: {value}")
        for problem in [*v.problems, *self.projection_differences][:20]:
            lines.append(f"  ! {problem}")
        return "\n".join(lines)


async def _setup(platform: Platform, api: Api, codec: EventCodec) -> tuple[User, str]:
    """A streamer with a channel and a live stream (its ingest's IngestConnected published here)."""
    owner = await api.user()
    channel = await api.until_ok(
        "/api/v1/channels", {"slug": f"chaos-{uuid.uuid4().hex[:8]}", "display_name": "Chaos"}, owner.token
    )
    owner = await api.login(owner.user_id, owner.username)  # the channel made them a streamer
    created = await api.until_ok(
        "/api/v1/streams", {"channel_id": channel["channel_id"], "title": "World final"}, owner.token
    )
    stream = created["stream_id"]
    async with EventPublisher(platform.settings.kafka, codec, producer="chaos.ingest") as publisher:
        await publisher.publish(
            IngestConnected(
                stream_id=stream, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="chaos"
            )
        )
    deadline = time.monotonic() + 60
    while (await api.client.get(f"/api/v1/streams/{stream}")).json().get("state") != "live":
        assert time.monotonic() < deadline, "the chaos stream did not go live"
        await asyncio.sleep(0.5)
    return owner, stream


def start_apps(platform: Platform) -> None:
    """Two processes of every tier but the API (see tests/chaos/platform.py), all healthy."""
    run = platform.run_dir
    platform.app("api", ("api",))
    for n in (1, 2):
        platform.app(f"processors-{n}", ("processors",), PROCESSORS__DATA_DIR=run / f"faust-{n}")
        platform.app(f"projector-{n}", ("projector",))
        platform.app(f"edge-{n}", ("edge",), EDGE__NODE_ID=f"edge-{n}")
    for app in platform.apps.values():
        app.start()
    for app in platform.apps.values():
        app.wait_healthy(180)


async def run(
    platform: Platform,
    plan: Sequence[Step],
    *,
    chatters: int = 4,
    viewers: int = 10,
    say: Callable[[str], None] = print,
) -> Report:
    """The whole run on a started platform (infrastructure up, apps started by `start_apps`)."""
    codec = EventCodec.load(SCHEMAS_DIR)
    api = Api(f"http://127.0.0.1:{platform.apps['api'].port}")
    edges = [platform.apps["edge-1"].port, platform.apps["edge-2"].port]
    try:
        owner, stream = await _setup(platform, api, codec)
        users = [await api.user() for _ in range(chatters)]
        clients = [EdgeClient(edges, i, user) for i, user in enumerate(users)]
        watchers = [EdgeClient(edges, i) for i in range(viewers)]
        probe_sender, probe_listener = EdgeClient(edges, 0, owner), EdgeClient(edges, 1)
        for client in [*clients, *watchers, probe_sender, probe_listener]:
            await client.connect(stream)
        load = Load(api, edges, stream, owner, list(zip(users, clients, strict=True)), watchers)
        prober = Prober(probe_sender, probe_listener, stream)
        nemesis = Nemesis(platform, stream, say=say)
        say(f"chaos: load on stream {stream}, {len(plan)} faults planned")

        started = time.monotonic()
        running = [asyncio.create_task(load.run()), asyncio.create_task(prober.run(load.stop))]
        faults: list[asyncio.Task[Fault]] = []
        for at, step in sorted(plan, key=lambda s: s[0]):  # each fault at its time, undone on its own
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            faults.append(asyncio.create_task(step(nemesis)))
        await asyncio.gather(*faults)
        await asyncio.sleep(8)  # the last fault's recovery, under load
        load.stop.set()
        seconds = time.monotonic() - started
        say("chaos: load stopped; retrying the registrations still owed…")
        await _bounded(asyncio.gather(*running), 240, "the load's end")
        await asyncio.sleep(2)  # the prober's last probes
        for fault in nemesis.faults:
            fault.recovered_after_s = prober.recovery_after(fault.at)

        say("chaos: checking the log against the history…")
        verdict = await _drained_verdict(platform, codec, load, stream)
        for problem in verdict.problems[:20]:
            say(f"chaos: ! {problem}")
        say("chaos: comparing the read models with a clean replay…")
        for client in [*clients, *watchers, probe_sender, probe_listener]:
            await client.close()
        differences_found = await _projections_against_replay(platform, say)
        counts = {
            "edge reconnects by clients": sum(c.reconnects for c in [*clients, *watchers]),
            **{
                f"registrations answered {status} (retried)": number
                for status, number in Counter(
                    str(op.detail.get("status", "no answer"))
                    for op in load.history.of("register")
                    if not op.ok
                ).items()
            },
            "503 answers with Retry-After": sum(
                1
                for op in load.history.of("register")
                if op.detail.get("status") == 503 and op.detail.get("retry_after")
            ),
            "chat sends not acknowledged (not owed)": sum(1 for op in load.history.of("chat") if not op.ok),
            "polls opened": len(load.polls),
        }
        return Report(nemesis.faults, verdict, differences_found, counts, seconds)
    finally:
        await api.close()


async def _bounded(work: Awaitable[object], timeout_s: float, what: str) -> None:
    """Await `work`; past `timeout_s`, fail showing where every task of the run is waiting."""
    try:
        await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        stacks = []
        for task in asyncio.all_tasks():
            frames = task.get_stack(limit=3)
            stacks.append(
                f"{task.get_name()}: " + " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
            )
        raise AssertionError(
            f"{what} did not come within {timeout_s:g}s; tasks:\n" + "\n".join(stacks)
        ) from None


async def _drained_verdict(platform: Platform, codec: EventCodec, load: Load, stream: str) -> Verdict:
    """The checker's verdict once the pipelines have caught up (retried while something is missing)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        verdict = await check_log(platform.settings, codec, load.history, stream)
        if verdict.clean or time.monotonic() > deadline:
            return verdict
        await asyncio.sleep(3)


async def _projections_against_replay(platform: Platform, say: Callable[[str], None]) -> list[str]:
    """Stop the projectors once caught up, dump the read models, rebuild them from the log, compare."""
    settings = platform.settings
    pool = make_pool(settings.postgres, name="chaos", schema="public")
    client = make_client(settings.redis, name="chaos")
    async with pool:
        try:
            ends = await end_positions(settings)
            await wait_applied(
                pool, client, schema="public", prefix="", positions=ends, timeout_s=DRAIN_TIMEOUT_S
            )
        finally:
            await client.aclose()
    for name in ("projector-1", "projector-2"):
        platform.apps[name].stop()
    live = await _dump(platform)
    say("chaos: rebuilding the read models from the log…")
    await asyncio.to_thread(esports, platform.env, "rebuild", "--quiet")
    return differences(live, await _dump(platform))


async def _dump(platform: Platform) -> dict[str, object]:
    settings = platform.settings
    pool = make_pool(settings.postgres, name="chaos", schema="public")
    async with pool:
        tables = await dump_tables(pool, "public")
    client = make_client(settings.redis, name="chaos")
    try:
        keys = {k: v for k, v in (await dump_keys(client, "")).items() if "{redis." in k}
    finally:
        await client.aclose()
    return {
        **{f"table {name}": rows for name, rows in tables.items()},
        **{f"key {k}": v for k, v in keys.items()},
    }


@contextmanager
def chaos_platform(settings: Settings) -> Iterator[Platform]:
    """The private infrastructure of a chaos run (`settings` only say where the Kafka jars are):
    a three-broker cluster, PostgreSQL and Redis; stopped with everything else at the end."""
    environment = {
        "EDGE__HEARTBEAT_FLUSH_S": 1,
        "PROCESSORS__SESSION_TIMEOUT_S": 8,
        # The run plays the ingest node (one IngestConnected, no health reports): no silence end.
        "INGEST__SILENCE_END_S": 86400,
    }
    with infrastructure(settings, ("postgres", "redis"), **environment) as platform:
        yield platform


def run_on(platform: Platform, plan: Sequence[Step], say: Callable[[str], None] = print) -> Report:
    """Create the topics, start two processes of every tier, run `plan`, stop the apps; the report."""
    say("chaos: starting topics and two processes of every tier…")
    esports(platform.env, "topics", "create")
    try:
        start_apps(platform)
        report = asyncio.run(run(platform, plan, say=say))
    except BaseException:
        for app in platform.apps.values():
            say(f"--- {app.name} log tail\n{app.tail(1500)}")
        _keep_logs(platform, say)
        raise
    finally:
        for app in platform.apps.values():
            app.stop()
    if not report.clean:
        _keep_logs(platform, say)
    return report


def run_all(settings: Settings, plan: Sequence[Step], say: Callable[[str], None] = print) -> Report:
    """Start the platform, run `plan`, stop it all."""
    with chaos_platform(settings) as platform:
        return run_on(platform, plan, say)


def _keep_logs(platform: Platform, say: Callable[[str], None]) -> None:
    """Copy every process's log out of the run folder (deleted at the end) for a post-mortem."""
    kept = Path(tempfile.mkdtemp(prefix="chaos-logs-", dir="/tmp"))
    shutil.copytree(platform.run_dir / "logs", kept, dirs_exist_ok=True)
    say(f"chaos: logs kept in {kept}")
