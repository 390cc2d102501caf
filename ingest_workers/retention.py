"""Replays on an ingest node's disk: deleting one on command, and the retention sweep.

A stream's HLS lives in ``<hls_dir>/<stream_id>/`` (``master.m3u8``, one media playlist per rendition,
the segments, ``thumb.jpg``). Once the session ends every media playlist carries ``#EXT-X-ENDLIST``
and is never written again, so the newest playlist's mtime is when the replay became final: the
retention sweep ages a folder from there, with no marker file to keep in step.

Two ways a replay goes:
- **On command**: ``StreamVodDeleted`` on ``streams`` (the owner or an admin, through the API); every
  node's :class:`~ingest_workers.commands.CommandListener` calls :func:`remove_vod`.
- **By age**: :class:`RetentionSweeper` on each node removes ended folders older than
  ``vod_retention_days`` and publishes ``StreamVodDeleted`` (reason ``retention``) for each, so read
  models follow. A node that was down when a deletion command was published still ages the leftover
  out with the sweep.

Safety: only direct children of ``hls_dir`` named like a stream id are candidates; a symlink is
never followed (a symlinked folder is unlinked, never its target); a folder of a stream live on this
node, or with a playlist still open (no ENDLIST), is never touched.

:func:`expired` is the pure rule (tested with a fake clock); the rest does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from events.base import Event
from events.streams import StreamVodDeleted, VodDeletionReason

__all__ = [
    "RetentionSweeper",
    "VodFolder",
    "expired",
    "remove_vod",
    "scan",
    "vod_folder",
]

log = logging.getLogger(__name__)

ENDLIST = "#EXT-X-ENDLIST"
# A stream id as the API issues it (a UUID) or as tests and the demo name it; never "." or "..".
_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


@dataclass(frozen=True, slots=True, kw_only=True)
class VodFolder:
    """One stream's folder as the rule sees it: whether every playlist is final, and since when."""

    stream_id: str
    ended: bool  # every media playlist has #EXT-X-ENDLIST
    final_at: datetime  # mtime of its newest playlist (UTC)


def expired(
    folders: Iterable[VodFolder], *, now: datetime, retention_days: float, live: Collection[str]
) -> list[str]:
    """The stream ids whose replay the sweep deletes: ended, not live here, final for longer than
    ``retention_days`` (0 = keep forever: nothing)."""
    if retention_days <= 0:
        return []
    cutoff = now - timedelta(days=retention_days)
    return sorted(f.stream_id for f in folders if f.ended and f.stream_id not in live and f.final_at < cutoff)


def _child(hls_dir: Path, stream_id: str) -> Path | None:
    """``hls_dir/stream_id`` if ``stream_id`` is a plain stream id (no separator, no dot-dot)."""
    return hls_dir / stream_id if _STREAM_ID.fullmatch(stream_id) else None


def vod_folder(hls_dir: Path, stream_id: str) -> VodFolder | None:
    """The folder of ``stream_id`` (None: absent, a symlink, or without a media playlist)."""
    root = _child(hls_dir, stream_id)
    if root is None or root.is_symlink() or not root.is_dir():
        return None
    playlists = [p for p in root.glob("*.m3u8") if p.is_file() and not p.is_symlink()]
    media = [p for p in playlists if p.name != "master.m3u8"]
    if not media:
        return None
    ended = all(ENDLIST in p.read_text(errors="replace") for p in media)
    newest = max(p.stat().st_mtime for p in playlists)
    return VodFolder(stream_id=stream_id, ended=ended, final_at=datetime.fromtimestamp(newest, UTC))


def scan(hls_dir: Path) -> list[VodFolder]:
    """Every stream folder directly under ``hls_dir`` (symlinks and odd names skipped)."""
    if not hls_dir.is_dir():
        return []
    folders = (vod_folder(hls_dir, child.name) for child in hls_dir.iterdir())
    return [f for f in folders if f is not None]


def remove_vod(hls_dir: Path, stream_id: str) -> bool:
    """Delete ``<hls_dir>/<stream_id>`` (True if something was removed). A symlink there is unlinked,
    its target left alone; files inside are removed without following links (``shutil.rmtree``)."""
    root = _child(hls_dir, stream_id)
    if root is None:
        raise ValueError(f"not a stream id: {stream_id!r}")
    if root.is_symlink():
        root.unlink()
        return True
    if not root.is_dir():
        return False
    shutil.rmtree(root)
    return True


class RetentionSweeper:
    """Every ``interval_s``: delete this node's expired replays and publish a ``StreamVodDeleted``
    (reason ``retention``) for each one removed."""

    def __init__(
        self,
        *,
        hls_dir: Path,
        retention_days: float,
        interval_s: float,
        node: str,
        live: Callable[[], Collection[str]],
        publish: Callable[[Event], Awaitable[object]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._hls_dir = hls_dir
        self._retention_days = retention_days
        self._interval_s = interval_s
        self._node = node
        self._live = live
        self._publish = publish
        self._clock = clock

    async def run(self) -> None:
        """Until cancelled; a failed sweep is logged and retried at the next interval."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("replay retention sweep of %s failed", self._hls_dir)
            await asyncio.sleep(self._interval_s)

    async def sweep(self) -> list[str]:
        """One pass; returns the stream ids whose replay it deleted."""
        folders = await asyncio.to_thread(scan, self._hls_dir)
        doomed = expired(folders, now=self._clock(), retention_days=self._retention_days, live=self._live())
        removed = []
        for stream_id in doomed:
            if stream_id in self._live():  # went live again while we scanned
                continue
            if await asyncio.to_thread(remove_vod, self._hls_dir, stream_id):
                removed.append(stream_id)
                log.info("stream %s: replay older than %s days deleted", stream_id, self._retention_days)
                await self._publish(
                    StreamVodDeleted(
                        stream_id=stream_id,
                        deleted_by=f"ingest:{self._node}",
                        reason=VodDeletionReason.RETENTION,
                        producer="ingest_workers",
                    )
                )
        return removed
