"""Composition root of the stream-processor worker (`esports processors`).

Settings -> topics checked and changelogs created -> codec, metrics, decision publisher -> Faust app
-> ``faust.Worker``, which runs until SIGINT/SIGTERM and then stops the app (committing what was
processed) before the publisher. A worker (re)started while a broker is down waits for the topics'
check for up to :data:`START_RETRY_S` rather than exiting: the cluster serves without that broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from mode import Service

from events.codec import EventCodec
from infra.gc_tuning import tune_for_throughput
from infra.kafka import KafkaError
from infra.settings import KafkaSettings, Settings
from schemas import SCHEMAS_DIR
from stream_processors.app import create_app
from stream_processors.metrics import ProcessorMetrics
from stream_processors.moderation.agent import RosterReader, chat_limits
from stream_processors.moderation.chat_worker import ChatWorker
from stream_processors.partition_worker import PartitionWorker
from stream_processors.points.earning import ChatEarning, WatchEarning
from stream_processors.points.ledger_worker import LedgerWorker
from stream_processors.points.prediction_worker import PredictionWorker
from stream_processors.polls.vote_worker import VoteWorker
from stream_processors.runtime import DecisionPublisher
from stream_processors.topology import FAMILIES, TopologyError, prepare_topics
from stream_processors.viewers.presence_worker import PresenceWorker

log = logging.getLogger(__name__)

# The partition workers of a family: heartbeats counted by session, votes tallied by voter, chat
# decided by sender; with the polls, points decided by user, predictions by stream, and earnings found
# where they happen.
PARTITION_WORKERS: dict[str, tuple[type[PartitionWorker[Any]], ...]] = {
    "viewers": (PresenceWorker,),
    "polls": (VoteWorker, LedgerWorker, PredictionWorker, WatchEarning, ChatEarning),
    "moderation": (ChatWorker,),
}


START_RETRY_S = 120.0  # how long a starting worker retries the topics' check while Kafka cannot answer
START_RETRY_EVERY_S = 2.0


async def prepared(
    kafka: KafkaSettings,
    family: str | None,
    *,
    retry_s: float = START_RETRY_S,
    every_s: float = START_RETRY_EVERY_S,
) -> int:
    """:func:`prepare_topics`, tried again while the error is retriable (a broker down: a worker
    restarted during an outage) for up to ``retry_s``; a missing topic or a bad layout fails at once."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            return await prepare_topics(kafka, family)
        except KafkaError as e:
            if not e.retriable or time.monotonic() + every_s > deadline:
                raise
            log.warning("checking the topics: %s; trying again in %gs", e, every_s)
            await asyncio.sleep(every_s)


def run(settings: Settings, family: str | None = None) -> int:
    """Run the processors (every family, or only ``family`` in its own worker group) until
    interrupted; 0 after a clean stop, 1 if they cannot start or crashed."""
    tune_for_throughput()
    try:
        partitions = asyncio.run(prepared(settings.kafka, family))
    except (KafkaError, TopologyError) as e:
        log.error("cannot start the processors: %s", e)
        return 1
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _run_worker(settings, partitions, loop, family)
    finally:
        asyncio.set_event_loop(None)


def _run_worker(
    settings: Settings, partitions: int, loop: asyncio.AbstractEventLoop, family: str | None
) -> int:
    codec = EventCodec.load(SCHEMAS_DIR)
    metrics = ProcessorMetrics()
    runs = FAMILIES if family is None else (family,)
    publishing = DecisionPublisher(settings.kafka, codec, loop=loop)
    services: list[Service] = [publishing]  # started before the app, stopped after it
    roster = None
    if "moderation" in runs or "polls" in runs:
        # read to the end of `users` before the moderation agent decides
        roster = RosterReader(settings.kafka, codec, metrics, loop=loop)
        services.append(roster)
    # The hot paths' consumer groups beside the app (never on Faust's fetcher).
    chat = {} if roster is None else {"roster": roster.roster, "limits": chat_limits(settings.chat)}
    hot = [
        partition_worker(
            settings,
            codec,
            publishing,
            metrics,
            partitions,
            loop=loop,
            **(chat if owner == "moderation" else {}),
        )
        for owner, partition_workers in PARTITION_WORKERS.items()
        if owner in runs
        for partition_worker in partition_workers
    ]
    services.extend(hot)
    app = create_app(
        settings,
        partitions=partitions,
        codec=codec,
        publishing=publishing,
        metrics=metrics,
        roster=roster,
        family=family,
        partition_workers=hot,
    )
    worker = faust.Worker(
        app,
        *services,
        loop=loop,
        quiet=True,
        override_logging=False,  # logging is configured by the CLI (infra.logs), not by mode
        redirect_stdouts=False,
    )
    worker.spinner = None  # terminal escape codes in a service's output help nobody; it logs "Ready"
    log.info(
        "processors starting: app=%s partitions=%s web=%s:%s",
        app.conf.id,
        partitions,
        settings.processors.web_host,
        settings.processors.web_port,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as e:  # mode's worker always leaves through sys.exit
        return e.code if isinstance(e.code, int) else 1
    return 0
