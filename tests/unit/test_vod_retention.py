"""Replay deletion on an ingest node: the command rule, the retention rule (fake clock), and the disk
work on a tmp folder (ended vs live folders, symlinks never followed)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.base import Event
from events.streams import StreamVodDeleted, VodDeletionReason
from ingest_workers.commands import Drop, Publisher, RemoveVod, decide
from ingest_workers.retention import RetentionSweeper, VodFolder, expired, remove_vod, scan, vod_folder
from tests.unit.event_samples import sample_event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _deleted(stream_id: str) -> Event:
    return sample_event(StreamVodDeleted, stream_id=stream_id, deleted_by="u-1")


@pytest.mark.parametrize(
    ("publishers", "commands"),
    [
        ((), [RemoveVod(stream_id="s-1")]),
        ((Publisher(stream_id="s-2"),), [RemoveVod(stream_id="s-1")]),
        ((Publisher(stream_id="s-1", channel_id="c-1"),), []),  # live here again: its files are live
    ],
)
def test_a_deleted_replay_is_removed_unless_the_stream_is_live_here(
    publishers: tuple[Publisher, ...], commands: list[Drop | RemoveVod]
) -> None:
    assert decide(_deleted("s-1"), publishers) == commands


def _folder(stream_id: str, *, age_days: float, ended: bool = True) -> VodFolder:
    return VodFolder(stream_id=stream_id, ended=ended, final_at=NOW - age_days * DAY)


FOLDERS = [
    _folder("old", age_days=40),
    _folder("young", age_days=3),
    _folder("open", age_days=40, ended=False),  # a playlist without ENDLIST: a session still writing
    _folder("live-again", age_days=40),
    _folder("edge", age_days=30),  # exactly the retention: not yet older than it
]


@pytest.mark.parametrize(
    ("retention_days", "doomed"),
    [
        (30, ["old"]),
        (1, ["edge", "old", "young"]),
        (29.5, ["edge", "old"]),
        (0, []),  # 0 = keep forever
    ],
)
def test_which_replays_the_sweep_deletes(retention_days: float, doomed: list[str]) -> None:
    assert expired(FOLDERS, now=NOW, retention_days=retention_days, live={"live-again"}) == doomed


def _write_vod(hls: Path, stream_id: str, *, ended: bool, mtime: datetime) -> Path:
    root = hls / stream_id
    root.mkdir(parents=True)
    end = "#EXT-X-ENDLIST\n" if ended else ""
    (root / "720p.m3u8").write_text(f"#EXTM3U\n#EXTINF:2.0,\n720p_00000.ts\n{end}")
    (root / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p.m3u8\n")
    (root / "720p_00000.ts").write_bytes(b"\x47" * 188)
    for playlist in root.glob("*.m3u8"):
        os.utime(playlist, (mtime.timestamp(), mtime.timestamp()))
    return root


def test_scan_reads_endlist_and_age_and_skips_symlinks_and_odd_names(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    _write_vod(hls, "s-ended", ended=True, mtime=NOW - 40 * DAY)
    _write_vod(hls, "s-live", ended=False, mtime=NOW)
    outside = _write_vod(tmp_path / "elsewhere", "s-target", ended=True, mtime=NOW - 40 * DAY)
    (hls / "s-link").symlink_to(outside)
    (hls / ".tmp").mkdir()
    (hls / "stray.txt").write_text("x")
    by_id = {f.stream_id: f for f in scan(hls)}
    assert sorted(by_id) == ["s-ended", "s-live"]
    assert by_id["s-ended"].ended and not by_id["s-live"].ended
    assert by_id["s-ended"].final_at == NOW - 40 * DAY
    assert vod_folder(hls, "..") is None and vod_folder(hls, "s-link") is None
    assert scan(tmp_path / "missing") == []


def test_remove_vod_never_leaves_hls_dir(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    _write_vod(hls, "s-1", ended=True, mtime=NOW)
    outside = _write_vod(tmp_path / "elsewhere", "s-target", ended=True, mtime=NOW)
    (hls / "s-link").symlink_to(outside)
    (hls / "s-2").mkdir()
    (hls / "s-2" / "escape").symlink_to(outside)  # a link inside a folder: unlinked, not followed

    assert remove_vod(hls, "s-1") and not (hls / "s-1").exists()
    assert remove_vod(hls, "s-link") and not (hls / "s-link").exists()
    assert remove_vod(hls, "s-2") and not (hls / "s-2").exists()
    assert (outside / "720p.m3u8").is_file() and (outside / "720p_00000.ts").is_file()
    assert not remove_vod(hls, "s-1")  # already gone
    for bad in ("..", "../elsewhere", "a/b", "", "."):
        with pytest.raises(ValueError, match="not a stream id"):
            remove_vod(hls, bad)
    assert outside.is_dir()


def test_the_sweep_deletes_old_ended_folders_only_and_says_so(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    _write_vod(hls, "s-old", ended=True, mtime=NOW - 10 * DAY)
    _write_vod(hls, "s-recent", ended=True, mtime=NOW - 1 * DAY)
    _write_vod(hls, "s-open", ended=False, mtime=NOW - 10 * DAY)  # a stuck session's folder
    _write_vod(hls, "s-live", ended=True, mtime=NOW - 10 * DAY)  # live again on this node
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    sweeper = RetentionSweeper(
        hls_dir=hls,
        retention_days=7,
        interval_s=3600,
        node="node-a",
        live=lambda: {"s-live"},
        publish=publish,
        clock=lambda: NOW,
    )
    assert asyncio.run(sweeper.sweep()) == ["s-old"]
    assert sorted(p.name for p in hls.iterdir()) == ["s-live", "s-open", "s-recent"]
    [event] = published
    assert isinstance(event, StreamVodDeleted)
    assert (event.stream_id, event.deleted_by, event.reason) == (
        "s-old",
        "ingest:node-a",
        VodDeletionReason.RETENTION,
    )
    assert asyncio.run(sweeper.sweep()) == [] and len(published) == 1  # nothing twice
