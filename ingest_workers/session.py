"""One live stream's ingest session: probe, plan the ladder, run and supervise FFmpeg, publish HLS and events.

A session lives from the publisher's arrival until it has been gone for ``end_grace_s``, and reports its
health (IngestHealthReported) every ``health_interval_s`` all that time, whatever it is doing: reports
that stop without a disconnect mean the node died, and the lifecycle agent ends the stream after
``silence_end_s``. Each FFmpeg process is a *run*; when one dies while the source is still connected
the session starts another after a doubling backoff, and the public playlists continue with a
discontinuity. A publisher that comes back within the grace period continues the same session the
same way, probed again.

A publisher back at another size or codec gets a new ladder (:func:`~ingest_workers.ladder.compare_ladders`;
the same plan changes nothing). Rungs kept by name continue their playlists; a new rung's playlist starts
with the earlier runs of the old rung nearest its height, then its own, so every rung of the new ladder
covers the whole session. Once every new rung has a segment the master is rewritten for the new ladder
(RenditionsReady is published again, same session) and only then are the dropped rungs' playlists ended
(``#EXT-X-ENDLIST``; kept on disk for the replay), so a player that reaches the end of one and reloads
the master finds the new ladder. The VOD master lists the rungs of the last plan, each whole.

While live the public playlists list the last ``dvr_window_s`` only; at the end every playlist is
rewritten once with all the session's segments and ``#EXT-X-ENDLIST`` (a replayable VOD), and
IngestDisconnected is published, which is what makes the lifecycle agent end the stream.

With ``low_latency`` FFmpeg writes parts; the session groups them into segments
(:class:`~ingest_workers.assembly.SegmentAssembler`) and rewrites a rendition's playlist at every part,
which the LL origin (:mod:`ingest_workers.ll_origin`) answers blocking reloads from.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from events.base import Event
from events.ingest import (
    IngestConnected,
    IngestDisconnected,
    IngestHealthReported,
    IngestProtocol,
    Rendition,
    RenditionsReady,
    SegmentPublished,
)
from infra.settings import IngestSettings
from ingest_workers import probe
from ingest_workers.assembly import SegmentAssembler
from ingest_workers.errors import ProbeFailed
from ingest_workers.ladder import (
    PART_PREFIX,
    FfmpegOutput,
    Rung,
    SourceInfo,
    Thumbnail,
    compare_ladders,
    parse_ladder,
    plan_ladder,
)
from ingest_workers.playlists import (
    LowLatency,
    MediaSegment,
    RenditionTrack,
    RunTrack,
    Variant,
    Window,
    media_sequence_of,
    parse_media_playlist,
    part_target,
    render_master,
    render_media,
)
from ingest_workers.transcoder import FfmpegRun

__all__ = ["EventSink", "Source", "StreamSession"]

log = logging.getLogger(__name__)
PRODUCER = "ingest_workers"
POLL_S = 0.2
LL_POLL_S = 0.05  # Low-Latency HLS: a part waits at most this long for the playlist that lists it
DISCONNECT_NOTICE_S = 2.0  # FFmpeg sees the end of the source a moment before on_publish_done arrives
LEFT_RUN_STOP_S = 5.0  # a run still reading a source that left is stopped after this
BACKOFF_START_S = 0.5
PROBE_TIMEOUT_S = 10.0
STABLE_RUN_S = 30.0  # a run that lasted this long resets the backoff


class EventSink(Protocol):
    """Where events go (the Kafka publisher; a list in unit tests)."""

    async def publish_many(self, events: Sequence[Event]) -> Any: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """What FFmpeg reads: ``input_args`` end with ``-i URL``; ``probe_args`` are the same minus pacing."""

    protocol: IngestProtocol
    input_args: tuple[str, ...]
    probe_args: tuple[str, ...]
    live: bool = True  # pushed (ends when the publisher leaves) rather than pulled (ends at EOF)
    encoder: str | None = None


class Outcome(enum.Enum):
    END = "end"
    RESTART = "restart"  # FFmpeg died under a connected source
    RECONNECT = "reconnect"  # the publisher came back within the grace period


@dataclass(slots=True)
class Run:
    """One FFmpeg run: where each rendition writes and what the public playlists took from it."""

    name: str
    outputs: dict[str, FfmpegOutput]
    tracks: dict[str, RunTrack]
    started_at: datetime | None = None
    taken: dict[str, int] = field(default_factory=dict)  # FFmpeg's sequence number of the next new segment
    assemblers: dict[str, SegmentAssembler] = field(default_factory=dict)  # Low-Latency HLS only


@dataclass(slots=True)
class Counters:
    restarts: int = 0
    failures_in_row: int = 0
    runs: int = 0
    master: bool = False
    started: float = field(default_factory=time.monotonic)


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a half (the origin refuses *.tmp)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class StreamSession:
    """The supervisor of one stream (see the module docstring)."""

    def __init__(
        self, settings: IngestSettings, sink: EventSink, *, stream_id: str, source: Source, node: str
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.stream_id = stream_id
        self.source = source
        self.node = node
        self.session_id = str(uuid.uuid4())
        self.root = settings.hls_dir / stream_id
        self.base_path = urlsplit(settings.public_hls_url).path.rstrip("/")
        self.rungs: tuple[Rung, ...] = ()  # the current plan
        self.tracks: dict[str, RenditionTrack] = {}  # by rung name, dropped rungs' too
        self._plan_from = 0  # the index in every current track's runs of the current plan's first run
        self._dropped: list[Rung] = []  # dropped by a re-plan; ended once the new master is written
        self.counters = Counters()
        self.current: FfmpegRun | None = None
        self._reporting: asyncio.Task[None] | None = None
        self._present = asyncio.Event()
        self._gone = asyncio.Event()
        self._present.set()
        self._ending: str | None = None  # why the session ends now, without a grace period
        self._run: Run | None = None  # the current run
        self._returns = 0  # how many times the publisher came back after leaving
        self.poll_s = LL_POLL_S if settings.low_latency else POLL_S

    # ------------------------------------------------------------------ publisher presence

    def source_left(self) -> None:
        self._present.clear()
        self._gone.set()

    def source_back(self) -> None:
        if self._ending is None:
            self._returns += self._gone.is_set()
            self._gone.clear()
            self._present.set()

    def end_now(self, reason: str) -> None:
        """End when the current run stops, without waiting for the publisher to come back."""
        self._ending = reason
        self.source_left()

    @property
    def master_path(self) -> str:
        return f"{self.base_path}/{self.stream_id}/master.m3u8"

    # ------------------------------------------------------------------ the session

    async def run(self) -> None:
        """The whole session; returns once the stream ended and the VOD is final."""
        await self._emit(
            IngestConnected(
                stream_id=self.stream_id,
                session_id=self.session_id,
                protocol=self.source.protocol,
                node=self.node,
                encoder=self.source.encoder,
            )
        )
        reason = "publisher left"
        self._reporting = asyncio.create_task(self._report_periodically(), name=f"health-{self.stream_id}")
        try:
            source = await self._probe()
            self.rungs = self._plan(source)
            self.tracks = {rung.name: RenditionTrack() for rung in self.rungs}
            log.info("stream %s: source %s; ladder %s", self.stream_id, source, [r.name for r in self.rungs])
            while (outcome := await self._one_run()) is not Outcome.END:
                await self._after(outcome)
        except ProbeFailed as e:
            log.warning("stream %s: %s", self.stream_id, e)
            reason = f"probe failed: {e}"
        except asyncio.CancelledError:
            if self._ending is None:
                raise
            reason = self._ending  # stopped on a command (a pulled feed has no publisher to drop)
        finally:
            reason = self._ending or reason
            await asyncio.shield(self._finish(reason))

    async def _probe(self) -> SourceInfo:
        """The source, retried: the hook answers before nginx starts relaying the stream."""
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while True:
            try:
                return await probe.probe_source(self.source.probe_args, timeout_s=PROBE_TIMEOUT_S)
            except ProbeFailed:
                if time.monotonic() > deadline or not self._present.is_set():
                    raise
            await asyncio.sleep(0.3)

    def _plan(self, source: SourceInfo) -> tuple[Rung, ...]:
        return plan_ladder(parse_ladder(self.settings.ladder), source, passthrough=self.settings.passthrough)

    async def _replan(self) -> None:
        """The publisher is back, maybe at another size or codec: the ladder of what it sends now."""
        try:
            source = await self._probe()
        except ProbeFailed as e:  # the next run fails the same way, and restarts or ends as usual
            log.warning("stream %s: %s; keeping the ladder", self.stream_id, e)
            return
        rungs = self._plan(source)
        change = compare_ladders(self.rungs, rungs)
        if change is None:
            return
        for rung in change.added:  # its earlier runs: its own if it had some, then its donor's
            own = self.tracks.get(rung.name, RenditionTrack()).runs
            donor = self.tracks[change.donors[rung.name]].runs
            self.tracks[rung.name] = RenditionTrack(runs=[*own, *donor[len(own) :]])
        names = {r.name for r in rungs}
        self._dropped = [r for r in (*self._dropped, *change.dropped) if r.name not in names]
        self.rungs, self._plan_from = rungs, self.counters.runs
        self.counters.master = False
        log.info(
            "stream %s: source now %dx%d %s; ladder %s",
            self.stream_id,
            source.width,
            source.height,
            source.codec,
            [r.name for r in rungs],
        )

    async def _after(self, outcome: Outcome) -> None:
        if outcome is Outcome.RECONNECT:
            await self._replan()
        if outcome is Outcome.RESTART:
            self.counters.restarts += 1
            delay = min(
                self.settings.restart_backoff_max_s, BACKOFF_START_S * 2**self.counters.failures_in_row
            )
            self.counters.failures_in_row += 1
            log.warning(
                "stream %s: ffmpeg died under a connected source; restart %d in %.1fs",
                self.stream_id,
                self.counters.restarts,
                delay,
            )
            await self._report_health(None)
            await asyncio.sleep(delay)

    async def _one_run(self) -> Outcome:
        returns = self._returns
        run = self._new_run()
        ffmpeg = FfmpegRun(
            self.stream_id,
            self.source.input_args,
            list(run.outputs.values()),
            segment_s=self.settings.segment_s,
            preset=self.settings.x264_preset,
            tune=self.settings.x264_tune,
            thumbnail=Thumbnail(path=self.root / "thumb.jpg", interval_s=self.settings.thumbnail_interval_s),
            part_s=self.settings.part_s if self.settings.low_latency else None,
        )
        self.current = ffmpeg
        await ffmpeg.start()
        exited = asyncio.create_task(ffmpeg.wait())
        try:
            while not exited.done():
                await asyncio.wait({exited}, timeout=self.poll_s)
                await self._collect(run)
                await self._stop_if_abandoned(ffmpeg)
        finally:
            if not exited.done():
                await ffmpeg.stop()
            code = await exited
        await self._collect(run)
        await self._close_parts()
        if time.monotonic() - ffmpeg.started > STABLE_RUN_S:
            self.counters.failures_in_row = 0
        return await self._outcome(code, came_back=self._returns > returns)

    async def _outcome(self, code: int, *, came_back: bool) -> Outcome:
        """`came_back`: the publisher left and came back while the run read it (before it stopped)."""
        if self._ending is not None:
            return Outcome.END
        if not self.source.live:
            return Outcome.END if code == 0 else Outcome.RESTART
        if not came_back and not self._gone.is_set():
            try:
                await asyncio.wait_for(self._gone.wait(), DISCONNECT_NOTICE_S)
            except TimeoutError:
                return Outcome.RESTART
        try:
            await asyncio.wait_for(self._present.wait(), self.settings.end_grace_s)
        except TimeoutError:
            return Outcome.END
        log.info("stream %s: publisher is back; continuing with a discontinuity", self.stream_id)
        return Outcome.RECONNECT

    async def _stop_if_abandoned(self, ffmpeg: FfmpegRun) -> None:
        if self._gone.is_set() and time.monotonic() - ffmpeg.started > LEFT_RUN_STOP_S:
            if not self._present.is_set():
                await asyncio.sleep(LEFT_RUN_STOP_S)
                if not self._present.is_set():
                    await ffmpeg.stop()

    def _new_run(self) -> Run:
        self.counters.runs += 1
        name = f"{self.session_id[:8]}-{self.counters.runs}"
        outputs = {r.name: FfmpegOutput(rung=r, directory=self.root / name / r.name) for r in self.rungs}
        tracks = {}
        for rung in self.rungs:
            track = RunTrack(init_uri=f"{name}/{rung.name}/init.mp4", started_at=datetime.now(UTC))
            self.tracks[rung.name].runs.append(track)
            tracks[rung.name] = track
        self._run = Run(name=name, outputs=outputs, tracks=tracks)
        if self.settings.low_latency:
            self._run.assemblers = {
                r.name: SegmentAssembler(outputs[r.name].directory, f"{name}/{r.name}/", tracks[r.name])
                for r in self.rungs
            }
        return self._run

    # ------------------------------------------------------------------ publishing segments

    async def _collect(self, run: Run) -> None:
        """Take new segments from FFmpeg's playlists into the public ones; publish what changed."""
        events: list[Event] = []
        for rung in self.rungs:
            events += self._collect_rendition(run, rung)
        if not self.counters.master and all(self._plan_run(r) for r in self.rungs):
            events.append(await self._write_master())
            self._end_dropped()
        if events:
            await self._emit(*events)

    def _collect_rendition(self, run: Run, rung: Rung) -> list[Event]:
        output, track = run.outputs[rung.name], run.tracks[rung.name]
        try:
            text = output.playlist.read_text()
        except FileNotFoundError:
            return []
        fresh = self._fresh(run, rung, media_sequence_of(text), parse_media_playlist(text)[1])
        if not fresh:
            return []
        if run.started_at is None:
            run.started_at = fresh[0].program_date_time or datetime.now(UTC)
            for each in run.tracks.values():
                each.started_at = run.started_at
        if run.assemblers:
            return self._take_parts(run, rung, fresh)
        events: list[Event] = []
        media_s = self.tracks[rung.name].duration_s
        for segment in fresh:
            uri = f"{run.name}/{rung.name}/{segment.uri}"
            track.append(uri, segment.duration_s)
            events.append(self._segment_event(rung, uri, media_s, segment, output))
            media_s += segment.duration_s
        self._write_media(rung, ended=False)
        return events

    def _take_parts(self, run: Run, rung: Rung, fresh: list[MediaSegment]) -> list[Event]:
        """Low-Latency HLS: FFmpeg's new parts into the segment in progress; the segments they close."""
        events: list[Event] = []
        for part in fresh:
            media_s = self.tracks[rung.name].duration_s
            closed = run.assemblers[rung.name].add(part.uri, part.duration_s)
            if closed is not None:
                events.append(self._closed_event(run, rung, closed, media_s))
        run.tracks[rung.name].hint_uri = f"{run.name}/{rung.name}/{PART_PREFIX}{run.taken[rung.name]:05d}.m4s"
        self._write_media(rung, ended=False)
        return events

    def _closed_event(self, run: Run, rung: Rung, segment: MediaSegment, media_s: float) -> SegmentPublished:
        uri = f"{run.name}/{rung.name}/{segment.uri}"
        return self._segment_event(rung, uri, media_s, segment, run.outputs[rung.name])

    async def _close_parts(self) -> None:
        """Low-Latency HLS, at the end of a run: its segments in progress are complete, no part follows."""
        run = self._run
        if run is None or not run.assemblers:
            return
        events: list[Event] = []
        for name, assembler in run.assemblers.items():
            rung = run.outputs[name].rung
            media_s = self.tracks[rung.name].duration_s
            closed = assembler.close()
            run.tracks[rung.name].hint_uri = None
            if closed is not None:
                events.append(self._closed_event(run, rung, closed, media_s))
            self._write_media(rung, ended=False)
        if events:
            await self._emit(*events)

    def _fresh(self, run: Run, rung: Rung, first: int, listed: list[MediaSegment]) -> list[MediaSegment]:
        """What FFmpeg's sliding playlist (`listed`, numbered from `first`) has that was not taken yet."""
        taken = run.taken.get(rung.name, 0)
        if first > taken:  # the worker stalled for a whole private playlist: those segments are lost
            log.warning(
                "stream %s: %s segments %d-%d of run %s slid out unread",
                self.stream_id,
                rung.name,
                taken,
                first - 1,
                run.name,
            )
        run.taken[rung.name] = max(taken, first + len(listed))
        return listed[max(0, taken - first) :]

    def _segment_event(
        self, rung: Rung, uri: str, media_s: float, segment: MediaSegment, output: FfmpegOutput
    ) -> SegmentPublished:
        size = (output.directory / segment.uri).stat().st_size
        sequence = self.tracks[rung.name].segment_count - 1
        return SegmentPublished(
            stream_id=self.stream_id,
            rendition=rung.name,
            sequence=sequence,
            uri=f"{self.base_path}/{self.stream_id}/{uri}",
            media_time_ms=int(media_s * 1000),
            duration_ms=round(segment.duration_s * 1000),
            size_bytes=size,
            producer=PRODUCER,
        )

    def _write_media(self, rung: Rung, *, ended: bool) -> None:
        text = render_media(
            self.tracks[rung.name],
            target_s=self.settings.segment_s,
            ended=ended,
            window=Window(dvr_s=self.settings.dvr_window_s),
            low_latency=self._low_latency(rung),
        )
        write_atomically(self.root / f"{rung.name}.m3u8", text)

    def _low_latency(self, rung: Rung) -> LowLatency | None:
        """The part target and the other renditions' reports (Low-Latency HLS only)."""
        if not self.settings.low_latency:
            return None
        reports = (self.tracks[r.name].report(f"{r.name}.m3u8") for r in self.rungs if r != rung)
        return LowLatency(
            part_target_s=part_target(self.settings.part_s, [r.fps for r in self.rungs]),
            reports=tuple(r for r in reports if r is not None),
        )

    def _end_dropped(self) -> None:
        """The playlists of the rungs a re-plan dropped: every segment so far, then the end."""
        for rung in self._dropped:
            self._write_media(rung, ended=True)
        self._dropped.clear()

    def _plan_run(self, rung: Rung) -> RunTrack | None:
        """The first run of the current plan in which `rung` has segments."""
        return next((r for r in self.tracks[rung.name].runs[self._plan_from :] if r.segments), None)

    async def _write_master(self) -> RenditionsReady:
        variants = [await self._variant(rung) for rung in self.rungs if self.tracks[rung.name].segment_count]
        write_atomically(self.root / "master.m3u8", render_master(variants))
        self.counters.master = True
        log.info("stream %s: playable at %s", self.stream_id, self.master_path)
        return RenditionsReady(
            stream_id=self.stream_id,
            session_id=self.session_id,
            master_playlist=self.master_path,
            renditions=tuple(_rendition(v) for v in variants),
            producer=PRODUCER,
        )

    async def _variant(self, rung: Rung) -> Variant:
        # at the end of a session whose last plan wrote nothing yet, what the playlist ends with
        run = self._plan_run(rung) or next(r for r in reversed(self.tracks[rung.name].runs) if r.segments)
        codecs = probe.codecs_of(self.root / run.init_uri, has_audio=rung.audio_kbps > 0)
        rates = [self._segment_bits(s) / max(s.duration_s, 0.1) for s in run.segments]
        nominal = 0 if rung.copy else int((rung.video_kbps * 1.1 + rung.audio_kbps) * 1000)
        peak = max(nominal, int(max(rates) * 1.1))
        average = int(
            sum(self._segment_bits(s) for s in run.segments)
            / max(sum(s.duration_s for s in run.segments), 0.1)
        )
        return Variant(
            rung=rung, uri=f"{rung.name}.m3u8", bandwidth=peak, average_bandwidth=average, codecs=codecs
        )

    def _segment_bits(self, segment: MediaSegment) -> int:
        return (self.root / segment.uri).stat().st_size * 8

    # ------------------------------------------------------------------ health and the end

    async def _report_periodically(self) -> None:
        """Every ``health_interval_s`` from the connect to the disconnect: probing, transcoding, backing
        off, waiting for the publisher. Its silence is what tells the lifecycle agent the node died."""
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            ffmpeg = self.current if self.current is not None and self.current.running else None
            try:
                await self._report_health(ffmpeg)
            except Exception as e:  # one lost report is a gap the silence rule allows; go on
                log.warning(
                    "stream %s: health report not published (%s: %s)", self.stream_id, type(e).__name__, e
                )

    async def _report_health(self, ffmpeg: FfmpegRun | None) -> None:
        progress = ffmpeg.progress if ffmpeg else None
        await self._emit(
            IngestHealthReported(
                stream_id=self.stream_id,
                session_id=self.session_id,
                input_bitrate_kbps=round(ffmpeg.input_kbps(), 1) if ffmpeg else 0.0,
                fps=progress.fps if progress else 0.0,
                encoder_speed=progress.speed if progress else 0.0,
                dropped_frames=progress.drop_frames if progress else 0,
                restarts=self.counters.restarts,
                producer=PRODUCER,
            )
        )

    async def _finish(self, reason: str) -> None:
        if self._reporting is not None:  # no report after the disconnect
            self._reporting.cancel()
            await asyncio.gather(self._reporting, return_exceptions=True)
        await self._close_parts()  # a run cancelled mid-segment: its parts still make the VOD
        if any(self.tracks[r.name].segment_count for r in self.rungs):
            if not self.counters.master:
                await self._write_master()
            for rung in self.rungs:
                self._write_media(rung, ended=True)
        self._end_dropped()
        duration_ms = int((time.monotonic() - self.counters.started) * 1000)
        await self._emit(
            IngestDisconnected(
                stream_id=self.stream_id, session_id=self.session_id, reason=reason, duration_ms=duration_ms
            )
        )
        log.info("stream %s: session %s ended (%s)", self.stream_id, self.session_id, reason)

    async def _emit(self, *events: Event) -> None:
        stamped = [e if e.producer else _with_producer(e) for e in events]
        await self.sink.publish_many(stamped)


def _with_producer(event: Event) -> Event:
    from dataclasses import replace

    return replace(event, producer=PRODUCER)


def _rendition(variant: Variant) -> Rendition:
    rung = variant.rung
    return Rendition(
        name=rung.name,
        width=rung.width,
        height=rung.height,
        fps=rung.fps,
        video_bitrate_kbps=rung.video_kbps or (variant.average_bandwidth // 1000),
        audio_bitrate_kbps=rung.audio_kbps,
    )
