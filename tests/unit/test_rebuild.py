"""The pure parts of ``esports rebuild`` and ``esports report``: selection, shadow names, key
ownership, the progress line, the CLI's usage errors and the text report."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any, cast

import pytest
from aiokafka import TopicPartition

from events.base import Event
from events.codec import DecodeError
from events.users import UserRegistered
from infra import cli
from infra.kafka import ConsumedEvent, Position
from infra.settings import Settings
from projections.database import make_pool
from projections.live import LiveProjector
from projections.projector import BatchStore, PostgresProjector
from projections.rebuild.command import POSTGRES, REDIS, SelectionError, select, shadow_prefix, shadow_schema
from projections.rebuild.progress import Progress, format_duration, render
from projections.rebuild.reader import Batches, FanOutReader, route, union
from projections.rebuild.swap import parse_offset_field
from projections.rebuild.worker import split
from projections.redis_projector import RedisProjector, glob_escape, owned_key_patterns
from projections.report.command import render_text
from projections.service import build_stores
from tests.unit.event_samples import sample_event


@pytest.fixture
def stores() -> list[BatchStore]:
    settings = Settings()
    pool = make_pool(settings.postgres, name="unit")  # never opened
    from infra.redis import make_client

    return build_stores(pool, make_client(settings.redis, name="unit"), schema="s", redis_prefix="p:")


def test_no_name_selects_every_registered_projector(stores: list[BatchStore]) -> None:
    assert select(stores, []) == stores


def test_a_postgres_projector_name_selects_all_of_them(stores: list[BatchStore]) -> None:
    postgres = [s for s in stores if isinstance(s, PostgresProjector)]
    assert len(postgres) >= 3
    assert select(stores, [postgres[0].name]) == postgres
    assert select(stores, [POSTGRES]) == postgres


def test_redis_projectors_are_selected_one_by_one(stores: list[BatchStore]) -> None:
    keyed = [s for s in stores if isinstance(s, RedisProjector)]
    assert select(stores, [keyed[0].name]) == [keyed[0]]
    assert select(stores, [REDIS]) == keyed


def test_an_unknown_name_is_a_usage_error_listing_the_known_ones(stores: list[BatchStore]) -> None:
    with pytest.raises(
        SelectionError, match=r"unknown projection 'nope'; known: postgres, redis, pg\.catalog"
    ):
        select(stores, ["nope"])


def test_shadow_names_are_valid_and_distinct_from_the_live_ones() -> None:
    assert shadow_schema("public") == "rebuild_public"
    assert len(shadow_schema("s" * 63)) == 63
    assert shadow_prefix("") == "rebuild:" and shadow_prefix("t:") == "rebuild:t:"
    with pytest.raises(ValueError):
        shadow_schema("Robert'); DROP")


def test_every_registered_redis_projector_says_which_keys_it_owns(stores: list[BatchStore]) -> None:
    for store in stores:
        if isinstance(store, RedisProjector):
            patterns = owned_key_patterns(store)
            assert glob_escape(store.offsets_key) in patterns
            assert all(p.startswith("p:") for p in patterns), patterns


def test_key_patterns_come_from_the_key_layout() -> None:
    patterns = owned_key_patterns(LiveProjector(None, prefix="a*b:"))  # type: ignore[arg-type]
    assert patterns == [
        r"a\*b:{redis.live}live:streams",
        r"a\*b:{redis.live}offsets:redis.live",
        r"a\*b:{redis.live}stream:*",
    ]


def test_a_projector_without_a_key_layout_cannot_be_rebuilt() -> None:
    class Bare(RedisProjector):
        name = "redis.bare"

    with pytest.raises(ValueError, match=r"redis\.bare"):
        owned_key_patterns(Bare(None, offsets_key="o"))  # type: ignore[arg-type]


def test_offset_fields_keep_dotted_topic_names() -> None:
    assert parse_offset_field("chat.messages:4") == ("chat.messages", 4)


def test_progress_line() -> None:
    assert format_duration(7) == "0:07" and format_duration(3723) == "1:02:03"
    line = render("catching up", 250, 1000, 2.0, bar=False)
    assert line == "rebuild catching up:  25% 250/1,000 events  125 events/s  ETA 0:06"
    assert render("done", 1000, 1000, 4.0, bar=True).startswith("rebuild done: [" + "#" * 24 + "] 100%")
    assert "ETA ?" in render("catching up", 0, 10, 1.0, bar=False)


async def test_progress_off_a_terminal_prints_plain_lines() -> None:
    out = io.StringIO()
    progress = Progress(out, plain_interval_s=0.01)
    progress.start(100)
    progress.advance(40)
    while " 40% 40/100" not in out.getvalue():  # noqa: ASYNC110 (a periodic line, whenever it comes)
        await asyncio.sleep(0.01)
    progress.phase = "done"
    progress.advance(60)
    await progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "rebuild catching up:   0% 0/100 events  0 events/s  ETA ?"
    assert lines[-1].startswith("rebuild done: 100% 100/100") and "\r" not in out.getvalue()


async def test_quiet_progress_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(out, quiet=True)
    progress.start(10)
    progress.note("hello")
    await progress.close()
    assert out.getvalue() == ""


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rebuild", "nope"]) == 2
    assert "unknown projection 'nope'" in capsys.readouterr().err
    assert cli.main(["rebuild", "--batch-size", "0"]) == 2
    assert cli.main(["rebuild", "--schema", "Bad-Name"]) == 2
    assert cli.main(["report", "match", "m", "--schema", "Bad-Name"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "tournament", "t"])
    assert exit_info.value.code == 2


def test_cli_says_naming_one_postgres_projector_rebuilds_them_all(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from projections.rebuild import command

    async def no_rebuild(*args: object) -> None:
        raise command.RebuildFailed("not in a unit test")

    monkeypatch.setattr(command, "rebuild", no_rebuild)
    assert cli.main(["rebuild", "pg.chat"]) == 1
    err = capsys.readouterr().err
    assert "rebuilt together: pg.catalog, pg.chat" in err and "not in a unit test" in err


def test_cli_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rebuild", "--list"]) == 0
    out = capsys.readouterr().out
    assert "pg.catalog" in out and "redis.live" in out and "chat.messages" in out


REPORT: dict[str, Any] = {
    "match": {
        "match_id": "m-1",
        "tournament_id": "t-1",
        "tournament": "Worlds",
        "teams": ["T1", "G2"],
        "round_name": "Final",
        "state": "ended",
        "started_at": "2025-06-01T18:31:15+00:00",
        "ended_at": "2025-06-01T19:20:15+00:00",
        "winner": "T1",
    },
    "audience": {"peak_viewers": 1200, "avg_viewers": 950.5, "buckets": 30},
    "streams": [
        {
            "stream_id": "s-main",
            "role": "main",
            "state": "live",
            "peak_viewers": 800,
            "avg_viewers": 612.4,
            "messages": 120,
            "per_minute_avg": 4.0,
        },
        {
            "stream_id": "s-pov",
            "role": "pov",
            "state": "live",
            "peak_viewers": None,
            "avg_viewers": None,
            "messages": None,
            "per_minute_avg": None,
        },
    ],
    "chat": {
        "messages": 120,
        "active_minutes": 30,
        "per_minute_avg": 4.0,
        "peak_minute": "2025-06-01T18:40:00+00:00",
        "per_minute_peak": 9,
    },
    "moderation": {"delete": 3, "ban": 1},
    "polls": [
        {
            "question": "Who wins?",
            "status": "closed",
            "final": True,
            "total": 4,
            "options": [
                {"option": "T1", "votes": 3, "share": 0.75},
                {"option": "G2", "votes": 1, "share": 0.25},
            ],
        }
    ],
}


def test_text_report() -> None:
    text = render_text(REPORT)
    assert text.splitlines()[0] == "Match m-1: T1 vs G2 (Worlds, Final)"
    assert "audience (all streams, distinct sessions): peak 1,200, average 950.5" in text
    assert "  s-main                   main      live          800     612.4     120        4" in text
    assert "  s-pov                    pov       live            -         -       0        -" in text
    assert "busiest 2025-06-01T18:40:00+00:00 with 9" in text
    assert "Moderation actions: delete 3, ban 1" in text
    assert "  Who wins? (closed, final, 4 votes)" in text
    assert "    T1                        3   75%" in text


def _consumed(topic: str, partition: int, offsets: range) -> list[ConsumedEvent]:
    event = sample_event(UserRegistered)
    return [ConsumedEvent(event, Position(topic, partition, o), None, [], 0) for o in offsets]


def test_one_read_covers_every_projectors_span_of_a_partition() -> None:
    spans = {
        "pg.catalog": {("users", 0): (10, 50), ("users", 1): (0, 5)},
        "pg.notifications": {("users", 0): (0, 40), ("users", 1): (5, 5)},  # partition 1: nothing to read
    }
    assert union(spans) == {("users", 0): (0, 50), ("users", 1): (0, 5)}


def test_each_projector_gets_the_events_inside_its_own_span_in_log_order() -> None:
    events = _consumed("users", 0, range(0, 20))
    spans = {
        "a": {("users", 0): (0, 100)},  # the whole fetch
        "b": {("users", 0): (5, 8)},  # resumed at 5, target 8
        "c": {("users", 0): (20, 30)},  # nothing in this fetch
        "d": {("users", 1): (0, 30)},  # another partition
    }
    shares = route(("users", 0), events, spans)
    assert set(shares) == {"a", "b"}
    assert shares["a"] == events
    assert [c.position.offset for c in shares["b"]] == [5, 6, 7]
    assert route(("users", 0), [], spans) == {}


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None = b"event"
    key: bytes | None = None
    headers: tuple[()] = ()
    timestamp: int = 0


class _Log:
    """A LogReader over records given in advance, one list per fetch (no broker)."""

    def __init__(self, fetches: list[list[_Record]]) -> None:
        self._fetches = fetches

    def assign(self, ranges: object) -> None:
        pass

    @property
    def open(self) -> bool:
        return bool(self._fetches)

    async def fetch(self) -> dict[TopicPartition, list[_Record]]:
        records = self._fetches.pop(0)
        return {TopicPartition(records[0].topic, records[0].partition): records}


class _Codec:
    def decode(self, value: bytes) -> Event:
        if value == b"bad":
            raise DecodeError("bad_magic_byte", "not an event")
        return sample_event(UserRegistered)


def test_the_fan_out_reader_decodes_once_queues_full_batches_then_the_rest_then_the_end() -> None:
    records = [_Record("users", 0, o, b"bad" if o == 4 else b"event") for o in range(8)]
    spans = {"a": {("users", 0): (0, 8)}, "b": {("users", 0): (6, 8)}}

    async def read() -> tuple[dict[str, list[list[int] | None]], int]:
        reader = FanOutReader(Settings().kafka, cast(Any, _Codec()), batch_size=3)
        reader._log = cast(Any, _Log([records[:5], records[5:]]))
        queues: dict[str, Batches] = {name: asyncio.Queue() for name in spans}
        await reader.feed(spans, queues)
        out: dict[str, list[list[int] | None]] = {name: [] for name in spans}
        for name, queue in queues.items():
            while not queue.empty():
                batch = queue.get_nowait()
                out[name].append(None if batch is None else [c.position.offset for c in batch])
        return out, reader.undecodable

    shared, undecodable = asyncio.run(read())
    assert shared == {"a": [[0, 1, 2], [3, 5, 6], [7], None], "b": [[6, 7], None]}
    assert undecodable == 1  # once, though two projectors read the partition


def test_two_shares_keep_the_projectors_of_a_topic_together_and_balance_the_work(
    stores: list[BatchStore],
) -> None:
    work = {s.name: 1000 for s in stores} | {"pg.chat": 13_000, "redis.chat": 12_000}
    first, second = split(stores, work)
    assert sorted(first + second) == sorted(s.name for s in stores)
    assert {"pg.chat", "redis.chat"} <= set(first) or {"pg.chat", "redis.chat"} <= set(second)
    topics = [{t for s in stores if s.name in share for t in s.topics} for share in (first, second)]
    assert not topics[0] & topics[1]  # each record is read (and decoded) in one process only
    assert sum(work[n] for n in first) >= sum(work[n] for n in second) > 0


def test_one_group_of_projectors_is_not_split(stores: list[BatchStore]) -> None:
    catalog = [s for s in stores if s.name in ("pg.catalog", "redis.live", "pg.notifications")]
    assert split(catalog, {s.name: 10 for s in catalog}) == (
        ["pg.catalog", "redis.live", "pg.notifications"],
        [],
    )
