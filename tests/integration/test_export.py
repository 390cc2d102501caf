"""`esports export` against the real broker: killed with SIGKILL at random moments and restarted, the
dataset holds every published record exactly once, in the layout the README gives, readable by
pyarrow and DuckDB; the same into a real S3-compatible server (moto's, started here); filters.

Records are produced with explicit timestamps around today's UTC midnight, so each partition's
records span two dates (two ``date=`` folders, and a file rolled at midnight).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest
from aiokafka import AIOKafkaProducer

from events.base import Event
from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.topics import partition_key, spec
from events.viewers import ViewerCountChanged, ViewingSessionStarted
from infra.kafka import TopicNames
from infra.settings import REPO_ROOT, Settings
from projections.export.layout import date_of, parse
from projections.replay.window import iso_ms
from tests.integration.projections_support import read_model, unique_schema
from tests.ports import free_port

pytestmark = pytest.mark.integration

CHAT, SESSIONS, COUNTS = "chat.messages", "viewers.sessions", "viewers.counts"
TOPICS = (CHAT, SESSIONS, COUNTS)
STREAMS = ("s-final", "s-semi", "s-show")
USERS = tuple(f"u{i}" for i in range(12))
KILL_TIMEOUT_S = 120.0  # a bound on waiting for the exporter's first file, not a speed assertion
TOP_CHATTERS = """
SELECT user_id, count(*) AS messages
FROM read_parquet('{root}/topic=chat.messages/*/*.parquet', union_by_name = true)
WHERE event_type = 'ChatMessageAccepted'
GROUP BY user_id ORDER BY messages DESC, user_id
"""
UNIQUE_VIEWERS = """
SELECT date, stream_id, count(DISTINCT coalesce(user_id, session_id)) AS viewers
FROM read_parquet('{root}/topic=viewers.sessions/*/*.parquet', union_by_name = true)
WHERE event_type = 'ViewingSessionStarted'
GROUP BY ALL ORDER BY ALL
"""


@dataclass
class Published:
    """What was produced: per topic, (partition, offset) -> (event id, record timestamp)."""

    settings: Settings
    records: dict[str, dict[tuple[int, int], tuple[str, int]]] = field(default_factory=dict)
    events: list[tuple[int, Event]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(r) for r in self.records.values())


def _midnight_ms() -> int:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(today.timestamp() * 1000)


def _events(rng: random.Random, chat: int, sessions: int, counts: int) -> list[tuple[str, Event]]:
    out: list[tuple[str, Event]] = []
    for i in range(chat):
        user = USERS[min(int(rng.expovariate(0.4)), len(USERS) - 1)]  # a few users chat most
        out.append((CHAT, _chat(STREAMS[i % 3], user, i)))
    for _ in range(sessions):
        started = ViewingSessionStarted(
            session_id=f"sess-{rng.randrange(400)}",
            stream_id=rng.choice(STREAMS),
            started_at=datetime.now(UTC),
            edge_id="edge-1",
            user_id=rng.choice([None, *USERS]),
        )
        out.append((SESSIONS, started))
    for i in range(counts):
        out.append((COUNTS, ViewerCountChanged(stream_id=STREAMS[i % 3], count=i, peak=i)))
    rng.shuffle(out)
    return out


def _chat(stream: str, user: str, i: int) -> ChatMessageAccepted:
    return ChatMessageAccepted(
        message_id=f"m{i}", stream_id=stream, user_id=user, display_name=user, text=f"gg {i}"
    )


async def publish(settings: Settings, codec: EventCodec, events: list[tuple[str, Event]]) -> Published:
    """Send the events with timestamps from 30 s before today's UTC midnight, 10 ms apart."""
    names = TopicNames(settings.kafka.topic_prefix)
    base = _midnight_ms() - 30_000
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    published = Published(settings, {t: {} for t in TOPICS})
    try:
        sent = []
        for i, (topic, event) in enumerate(events):
            timestamp = base + 10 * i
            future = await producer.send(
                names.physical(topic),
                codec.encode(event),
                key=partition_key(event),
                headers=codec.headers(event),
                timestamp_ms=timestamp,
            )
            sent.append((topic, event, timestamp, future))
        for topic, event, timestamp, future in sent:
            meta = await future
            published.records[topic][(meta.partition, meta.offset)] = (str(event.event_id), timestamp)
            published.events.append((timestamp, event))
    finally:
        await producer.stop()
    return published


@pytest.fixture
async def published(namespace: Settings, codec: EventCodec) -> Published:
    return await publish(namespace, codec, _events(random.Random(21), chat=3600, sessions=1200, counts=1200))


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "ESPORTS_EXPORT__WEB_PORT": str(free_port()),
        "ESPORTS_EXPORT__ROLL_RECORDS": "100",
        "ESPORTS_EXPORT__ROW_GROUP_ROWS": "40",
        "ESPORTS_EXPORT__ROLL_AGE_S": "2",
        **extra,
    }


def _command(out: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "projections.export.command",
        "--topics",
        ",".join(TOPICS),
        "--out",
        out,
        *extra,
    ]


async def kill_midway(
    argv: list[str], env: dict[str, str], committed: Callable[[], int], rng: random.Random
) -> bool:
    """Start the exporter, wait until it has committed 1 to 8 files more than it found (at random),
    kill -9 it up to 50 ms later. True if it was still running then (False: it had finished)."""
    target = committed() + rng.randint(1, 8)
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while proc.returncode is None and committed() < target:
        assert time.monotonic() < deadline, "the exporter committed no file"
        await asyncio.sleep(0.01)
    await asyncio.sleep(rng.uniform(0.0, 0.05))
    running = proc.returncode is None
    if running:
        proc.kill()
    _, err = await proc.communicate()
    assert running or proc.returncode == 0, err.decode()
    return running


async def run_to_end(argv: list[str], env: dict[str, str]) -> str:
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def _local_files(root: Path) -> Callable[[], int]:
    return lambda: sum(1 for _ in root.rglob("part-*.parquet"))


# --- checks ----------------------------------------------------------------------------------------


def check_dataset(
    published: Published, codec: EventCodec, paths: list[str], read: Callable[[str], pa.Table]
) -> dict[str, pa.Table]:
    """Every published record once per topic; file names and folders true to their rows."""
    tables: dict[str, pa.Table] = {}
    files = [f for f in (parse(p) for p in paths) if f is not None]
    for topic in TOPICS:
        mine = [f for f in files if f.topic == topic]
        rows: list[dict[str, Any]] = []
        for f in mine:
            table = read(f.path)
            offsets = table.column("offset").to_pylist()
            assert (min(offsets), max(offsets)) == (f.first, f.last), f.path
            assert set(table.column("partition").to_pylist()) == {f.partition}, f.path
            assert {date_of(int(t.timestamp() * 1000)) for t in table.column("timestamp").to_pylist()} == {
                f.day
            }
            rows += table.select(["partition", "offset", "event_id"]).to_pylist()
        keys = [(r["partition"], r["offset"]) for r in rows]
        assert len(keys) == len(set(keys)), f"{topic}: a record is in the dataset twice"
        assert set(keys) == set(published.records[topic]), f"{topic}: records missing or extra"
        ids = {(r["partition"], r["offset"]): r["event_id"] for r in rows}
        assert ids == {k: v[0] for k, v in published.records[topic].items()}
        assert {f.day for f in mine} == {date_of(_midnight_ms() - 1), date_of(_midnight_ms())}
        names = {p.rsplit("/", 1)[-1] for p in paths if f"topic={topic}/_schema/" in p}
        assert names >= {"schema.json", *(f"{c.event_type()}.avsc" for c in spec(topic).event_types)}
        tables[topic] = pa.Table.from_pylist(rows)
    assert not [p for p in paths if "/.part-" in p], "a staging file was left behind"
    return tables


def expected_top_chatters(published: Published) -> list[tuple[str, int]]:
    counts = Counter(e.user_id for _, e in published.events if isinstance(e, ChatMessageAccepted))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def expected_unique_viewers(published: Published) -> list[tuple[Any, str, int]]:
    seen: dict[tuple[Any, str], set[str]] = {}
    for timestamp, event in published.events:
        if isinstance(event, ViewingSessionStarted):
            key = (date_of(timestamp), event.stream_id)
            seen.setdefault(key, set()).add(event.user_id or event.session_id)
    return sorted((day, stream, len(viewers)) for (day, stream), viewers in seen.items())


def check_duckdb(con: duckdb.DuckDBPyConnection, root: str, published: Published) -> None:
    """The README's two queries answer what the published events say."""
    chatters = con.execute(TOP_CHATTERS.format(root=root)).fetchall()
    assert chatters == expected_top_chatters(published)
    viewers = con.execute(UNIQUE_VIEWERS.format(root=root)).fetchall()
    assert viewers == expected_unique_viewers(published)


# --- tests ---------------------------------------------------------------------------------------


async def test_killed_and_restarted_the_dataset_has_every_record_exactly_once(
    published: Published, codec: EventCodec, tmp_path: Path
) -> None:
    root = tmp_path / "dataset"
    env, rng = _env(published.settings), random.Random()
    killed_running = 0
    for _ in range(3):
        killed_running += await kill_midway(_command(str(root), "--once"), env, _local_files(root), rng)
    killed_running += await kill_midway(_command(str(root)), env, _local_files(root), rng)  # the service
    assert killed_running == 4, "the exporter finished before it could be killed: publish more"
    err = await run_to_end(_command(str(root), "--once"), env)
    assert f"{published.total:,} events" not in err  # the last run only exported the rest
    paths = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    check_dataset(published, codec, paths, lambda rel: pads.dataset(root / rel, format="parquet").to_table())
    assert json.loads((root / "_export.json").read_text())["filters"] == {
        "stream": None,
        "channel": None,
        "match": None,
    }

    hive = pads.dataset(root / f"topic={CHAT}", format="parquet", partitioning="hive")
    assert set(hive.schema.names) >= {"date", "partition", "offset", "user_id", "text"}
    assert hive.count_rows() == len(published.records[CHAT])
    con = duckdb.connect()
    counted = con.execute(
        f'SELECT topic, count(*), count(DISTINCT (partition, "offset")) FROM read_parquet('
        f"'{root}/*/*/*.parquet', hive_partitioning = true, union_by_name = true) GROUP BY topic"
    ).fetchall()
    assert sorted(counted) == sorted((t, len(r), len(r)) for t, r in published.records.items())
    check_duckdb(con, str(root), published)

    again = await run_to_end(_command(str(root), "--once"), env)  # nothing new: nothing written twice
    assert "0 events" in again and sum(1 for _ in root.rglob("part-*.parquet")) == len(
        [p for p in paths if parse(p)]
    )


async def test_the_service_commits_by_age_and_on_sigterm(published: Published, tmp_path: Path) -> None:
    root = tmp_path / "service"
    env = _env(published.settings, ESPORTS_EXPORT__ROLL_RECORDS="1000000", ESPORTS_EXPORT__ROLL_AGE_S="1")
    proc = await asyncio.create_subprocess_exec(
        *_command(str(root)), env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while _local_files(root)() == 0:  # files only an age roll can commit: the limit is a million
            assert proc.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        ops = f"http://127.0.0.1:{env['ESPORTS_EXPORT__WEB_PORT']}"
        status, _ = await asyncio.to_thread(_get, f"{ops}/health")
        assert status == 200
        while True:  # the service's /metrics: what it wrote, and no lag once it has read everything
            _, metrics = await asyncio.to_thread(_get, f"{ops}/metrics")
            written = sum(
                int(float(n))
                for n in re.findall(r"^esports_export_records_total\{[^}]*\} (\S+)$", metrics, re.M)
            )
            lag = re.findall(r"^esports_export_lag_records\{[^}]*\} (\S+)$", metrics, re.M)
            if written == published.total and lag and all(float(n) == 0 for n in lag):
                break
            assert time.monotonic() < deadline, metrics
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    rows = sum(pads.dataset(root / f"topic={t}", format="parquet").count_rows() for t in TOPICS)
    assert rows == published.total  # SIGTERM committed what was open


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port (a failure, never a skip, if it can't start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _s3(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key="test", secret_key="test", region="us-east-1", scheme="http",
        endpoint_override=endpoint.removeprefix("http://"), allow_bucket_creation=True,
    )  # fmt: skip


async def test_into_s3_killed_and_restarted(published: Published, codec: EventCodec, s3_server: str) -> None:
    s3 = _s3(s3_server)
    bucket = f"analytics-{uuid.uuid4().hex[:8]}"
    s3.create_dir(bucket)
    env = _env(
        published.settings,
        ESPORTS_EXPORT__S3_ENDPOINT=s3_server,
        ESPORTS_EXPORT__S3_ACCESS_KEY="test",
        ESPORTS_EXPORT__S3_SECRET_KEY="test",
    )
    root = f"{bucket}/esports/dataset"
    argv = _command(f"s3://{root}", "--once")

    def objects() -> list[str]:
        infos = s3.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return [i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File]

    def committed() -> int:
        return sum(1 for p in objects() if parse(p) is not None)

    assert await kill_midway(argv, env, committed, random.Random()), "finished before the kill"
    await run_to_end(argv, env)
    paths = objects()
    check_dataset(
        published, codec, paths, lambda rel: pads.dataset(f"{root}/{rel}", filesystem=s3).to_table()
    )

    chat = pads.dataset(f"{root}/topic={CHAT}", filesystem=s3, format="parquet", partitioning="hive")
    con = duckdb.connect()
    con.register("chat", chat)  # DuckDB reads the Arrow dataset pyarrow opens on S3
    (count,) = con.execute('SELECT count(DISTINCT (partition, "offset")) FROM chat').fetchone() or (0,)
    assert count == len(published.records[CHAT])


def _rows(root: Path, topic: str) -> list[dict[str, Any]]:
    if not (root / f"topic={topic}").exists() or not list((root / f"topic={topic}").rglob("*.parquet")):
        return []
    dataset = pads.dataset(root / f"topic={topic}", format="parquet", partitioning="hive")
    return dataset.to_table().to_pylist()


def _ids(root: Path) -> set[str]:
    return {r["event_id"] for t in TOPICS for r in _rows(root, t)}


def _expected(published: Published, keep: Callable[[int, Event], bool]) -> set[str]:
    return {str(e.event_id) for ts, e in published.events if keep(ts, e)}


async def test_a_one_shot_export_filtered_by_stream_and_time(published: Published, tmp_path: Path) -> None:
    root = tmp_path / "filtered"
    midnight = _midnight_ms()
    bounds = ["--from", iso_ms(midnight - 10_000), "--to", iso_ms(midnight + 10_000)]
    argv = _command(str(root), "--once", "--stream", "s-final", *bounds)
    await run_to_end(argv, _env(published.settings))
    assert _ids(root) == _expected(
        published,
        lambda ts, e: getattr(e, "stream_id", None) == "s-final"
        and midnight - 10_000 <= ts < midnight + 10_000,
    )
    done = await asyncio.to_thread(
        subprocess.run, _command(str(root), "--once"), env=_env(published.settings), cwd=REPO_ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1 and "was made with" in done.stderr  # a filtered dataset stays filtered


async def test_channel_and_match_filters_read_the_catalog(
    published: Published, settings: Settings, tmp_path: Path
) -> None:
    schema = unique_schema()
    now = datetime.now(UTC)
    async with read_model(settings, schema) as pool, pool.connection() as conn:
        await conn.execute(
            "INSERT INTO channels (channel_id, owner_id, slug, display_name, created_at, updated_at) "
            "VALUES ('c-1', 'o', 'lec-official', 'LEC', %(t)s, %(t)s),"
            " ('c-2', 'o', 'other', 'O', %(t)s, %(t)s)",
            {"t": now},
        )
        await conn.execute(
            "INSERT INTO streams (stream_id, channel_id, match_id, updated_at) VALUES "
            "('s-final', 'c-1', 'm-1', %(t)s), ('s-semi', 'c-1', NULL, %(t)s),"
            " ('s-show', 'c-2', NULL, %(t)s)",
            {"t": now},
        )
        await conn.commit()
        env = _env(published.settings)
        await run_to_end(
            _command(str(tmp_path / "c"), "--once", "--channel", "lec-official", "--schema", schema), env
        )
        await run_to_end(_command(str(tmp_path / "m"), "--once", "--match", "m-1", "--schema", schema), env)
    assert _ids(tmp_path / "c") == _expected(
        published, lambda _, e: getattr(e, "stream_id", None) in STREAMS[:2]
    )
    assert _ids(tmp_path / "m") == _expected(
        published, lambda _, e: getattr(e, "stream_id", None) == "s-final"
    )


def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
