"""One FFmpeg run: the process, its progress (health) and its warnings, supervised by the session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ingest_workers.ladder import FfmpegOutput, Thumbnail, transcode_command
from ingest_workers.progress import Progress, ProgressParser

__all__ = ["FfmpegRun"]

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 5.0
# FFmpeg 5.x's swscale says this for every JPEG still it converts to full range (yuvj420p), which
# is what the thumbnail wants: not worth a warning every few seconds.
NOISE = "deprecated pixel format used"


class FfmpegRun:
    """A started FFmpeg writing one run of every rendition; :meth:`wait` returns its exit code."""

    def __init__(
        self,
        stream_id: str,
        input_args: Sequence[str],
        outputs: Sequence[FfmpegOutput],
        *,
        segment_s: float,
        preset: str,
        tune: str = "",
        thumbnail: Thumbnail | None = None,
        part_s: float | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.outputs = tuple(outputs)
        self.argv = transcode_command(
            input_args,
            outputs,
            segment_s=segment_s,
            preset=preset,
            tune=tune,
            thumbnail=thumbnail,
            part_s=part_s,
        )
        self.progress = Progress()
        self.started = time.monotonic()
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._io_mark = (time.monotonic(), 0)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        """Started and not exited yet."""
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        for output in self.outputs:
            output.directory.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        log.info(
            "stream %s: ffmpeg pid %s started (%d renditions)", self.stream_id, self.pid, len(self.outputs)
        )
        self._readers = [
            asyncio.create_task(self._read_progress()),
            asyncio.create_task(self._read_warnings()),
        ]

    async def wait(self) -> int:
        assert self._process is not None
        code = await self._process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        log.info("stream %s: ffmpeg pid %s exited with %s", self.stream_id, self.pid, code)
        return code

    async def stop(self) -> None:
        """Ask FFmpeg to finish (SIGTERM flushes the last segment), kill it if it does not."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.terminate()
        try:
            await asyncio.wait_for(self._process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()

    def input_kbps(self) -> float:
        """Bytes FFmpeg read since the last call, as kbit/s (its only reads are the source)."""
        try:
            io = Path(f"/proc/{self.pid}/io").read_text().split()
            read = int(io[io.index("rchar:") + 1])
        except (OSError, ValueError, IndexError):
            return 0.0
        now = time.monotonic()
        then, before = self._io_mark
        self._io_mark = (now, read)
        return (read - before) * 8 / 1000 / max(now - then, 1e-3)

    async def _read_progress(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        parser = ProgressParser()
        async for raw in self._process.stdout:
            snapshot = parser.feed(raw.decode(errors="replace"))
            if snapshot is not None:
                self.progress = snapshot

    async def _read_warnings(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if NOISE in line:
                continue
            log.warning("stream %s: ffmpeg: %s", self.stream_id, line)
