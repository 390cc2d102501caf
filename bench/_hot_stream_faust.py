"""Scenario 5 of ``bench/hot_stream.py``: the bare-Faust ceiling, a Faust agent that only counts raw
records (one heartbeat a record, as the old design read them), beside a raw aiokafka read of them.

A helper module (``_``-prefixed: ``esports bench`` does not run it); run as a script it is the child
process that holds the Faust app (``python bench/_hot_stream_faust.py TOPIC RECORDS PARTITIONS``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from _hot_stream_support import Records, count_timeout, load, namespace, raw_consume

from events.codec import EventCodec
from events.topics import TopicSpec
from events.viewers import ViewerHeartbeat
from infra.kafka import TopicNames
from infra.settings import REPO_ROOT, Settings

BARE_FAUST_APP = "bench-bare-faust"
RESULT_MARK = b'{"records"'  # the child's one result line


class BareFaustFailed(Exception):
    """The bare-Faust child did not report (a reference figure: the run goes on without it)."""


def single_heartbeats(codec: EventCodec, count: int) -> Records:
    """The old design's records: one ViewerHeartbeat each."""
    beats = [
        ViewerHeartbeat(stream_id="hot", session_id=uuid.uuid4().hex, edge_id="edge-0") for _ in range(count)
    ]
    return [(b.session_id.encode(), codec.encode(b), codec.headers(b)) for b in beats]


async def bare_faust(base: Settings, codec: EventCodec, records: int, partitions: int) -> dict[str, float]:
    """A bare Faust agent counting ``records`` single records; raw aiokafka beside it."""
    scratch = TopicSpec(name="bench.bare-faust", key_field=None, event_types=(), owner="bench")
    async with namespace(base, partitions, [scratch]) as settings:
        topic = TopicNames(settings.kafka.topic_prefix).physical(scratch.name)
        await load(settings, codec, topic, single_heartbeats(codec, records))
        raw_s, _ = await raw_consume(settings, topic, partitions, records)
        with tempfile.TemporaryDirectory(prefix="bench-hot-faust-") as data:
            env = {
                **os.environ,
                "ESPORTS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
                "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
                "ESPORTS_PROCESSORS__DATA_DIR": data,
            }
            child = [sys.executable, __file__, topic, str(records), str(partitions)]
            rate = await asyncio.to_thread(run_bare_faust, child, env, count_timeout(records))
    return {"faust_records": rate, "faust_raw_records": records / raw_s}


def run_bare_faust(command: list[str], env: dict[str, str], timeout_s: float) -> float:
    """Start the child, read its one JSON line ({"records", "seconds"}), stop it."""
    process = subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:  # mode may write terminal codes before it
            if RESULT_MARK in line:
                result = json.loads(line[line.index(RESULT_MARK) :])
                return float(result["records"] / result["seconds"])
        raise BareFaustFailed(f"the bare Faust agent did not count every record in {timeout_s:.0f}s")
    finally:
        timer.cancel()
        process.kill()
        process.wait()


def bare_faust_child(topic: str, records: int, partitions: int) -> None:
    """The child process: a Faust app with one agent counting raw records, and nothing else."""
    import faust

    from stream_processors.app import faust_options

    settings = Settings()
    options = {**faust_options(settings, partitions), "web_enabled": False}
    app = faust.App(f"{settings.kafka.topic_prefix}{BARE_FAUST_APP}", **options)
    source = app.topic(topic, partitions=partitions)

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        seen, first = 0, 0.0
        async for _value in stream:
            seen += 1
            if seen == 1:
                first = time.monotonic()  # the first record: the timing excludes start-up
            elif seen == records:
                print(json.dumps({"records": records - 1, "seconds": time.monotonic() - first}), flush=True)

    worker = faust.Worker(app, quiet=True, override_logging=False, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    bare_faust_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
