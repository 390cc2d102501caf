"""The media half of WHIP ingest: a WebRTC publisher's decoded tracks, encoded once more to H.264/AAC in
MPEG-TS and sent over loopback UDP to the stream's session (whose FFmpeg reads it as it reads SRT).

aiortc hands over decoded frames, not the publisher's H.264, so :class:`TsRelay` encodes: x264
``ultrafast``/``zerolatency`` with a keyframe every segment (where the ladder cuts), AAC for the
Opus audio. It runs in one thread per publisher (both tracks, in arrival order), so the event loop
stays free. Timestamps: each track is anchored at its first frame's arrival (RTP timestamps start at
random offsets per track, so that lines them up) and then follows the sender's RTP clock, not arrival
jitter (:class:`_Clock`). The first frames are held back (at most ten, or a second) to measure the
publisher's frame rate, which the session's probe reads from the stream (:func:`frame_rate`); later
frames of another size (WebRTC senders scale down under congestion; x264 cannot) are scaled back to
the first size.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.stream import AudioStream
from av.video.frame import PictureType
from av.video.stream import VideoStream

__all__ = ["DEFAULT_RATE", "RTP_WRAP", "TsRelay", "frame_rate"]

log = logging.getLogger(__name__)
VIDEO_CLOCK = Fraction(1, 90000)
AUDIO_RATE = 48000
RTP_WRAP = 1 << 32
RATE_PROBE_FRAMES = 10  # video frames held back at the start to measure the publisher's frame rate
RATE_PROBE_S = 1.0  # ... or this long, whichever comes first
COMMON_RATES = (10, 12, 15, 20, 24, 25, 30, 48, 50, 60)
DEFAULT_RATE = 30


def frame_rate(intervals: list[float]) -> int:
    """The nominal frame rate of frames ``intervals`` seconds apart: the common rate nearest to the
    median interval (lost or late frames do not move a median)."""
    steps = sorted(i for i in intervals if i > 0)
    if not steps:
        return DEFAULT_RATE
    fps = 1 / steps[len(steps) // 2]
    return min(COMMON_RATES, key=lambda rate: abs(rate - fps))


@dataclass
class _Clock:
    """Presentation times in ``time_base`` units, strictly increasing: anchored at the first frame's
    arrival (which lines up the tracks), then advanced by the sender's own timestamps (RTP, 32 bits)."""

    origin: float
    time_base: Fraction
    last: int | None = None
    last_sent: int = 0

    def next(self, arrived: float, sent: int) -> int:
        if self.last is None:
            pts = int((arrived - self.origin) / self.time_base)
        else:
            step = (sent - self.last_sent) % RTP_WRAP
            if step >= RTP_WRAP // 2:  # a frame older than the last: no step back
                self.last += 1
                return self.last
            pts = max(self.last + step, self.last + 1)
        self.last, self.last_sent = pts, sent
        return pts


class TsRelay:
    """Encodes a publisher's decoded tracks to H.264/AAC in MPEG-TS, sent to ``udp://127.0.0.1:port``.

    Encoding and muxing run in one thread of their own (frames of both tracks, in arrival order)."""

    def __init__(self, port: int, *, keyframe_s: float) -> None:
        self.port = port
        self.keyframe_s = keyframe_s
        self._container = av.open(
            f"udp://127.0.0.1:{port}?pkt_size=1316", mode="w", format="mpegts", options={"flush_packets": "1"}
        )
        self._video: VideoStream | None = None
        self._audio: AudioStream | None = None
        self._size: tuple[int, int] | None = None
        self._clocks: dict[str, _Clock] = {}
        self._held: list[tuple[av.VideoFrame, float]] = []  # until the frame rate is known
        self._origin = time.monotonic()
        self._last_key = -1e9
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"whip-relay-{port}")
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, track: MediaStreamTrack) -> None:
        """Relay ``track`` from now on (its first of each kind; others are ignored)."""
        if track.kind == "video" and self._video is None:
            self._video = self._container.add_stream("libx264", rate=DEFAULT_RATE)
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.time_base = VIDEO_CLOCK
            self._video.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "20"}
        elif track.kind == "audio" and self._audio is None:
            self._audio = self._container.add_stream("aac", rate=AUDIO_RATE)
        else:
            return
        self._tasks.append(asyncio.create_task(self._pump(track), name=f"whip-{track.kind}-{self.port}"))

    async def _pump(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived = time.monotonic()
            try:
                await loop.run_in_executor(self._pool, self._write, frame, arrived)
            except (av.FFmpegError, ValueError) as e:
                log.warning("WHIP relay on :%s: frame dropped (%s)", self.port, e)
            except Exception:
                log.exception("WHIP relay on :%s: %s track stopped", self.port, track.kind)
                return

    def _write(self, frame: object, arrived: float) -> None:
        if isinstance(frame, av.VideoFrame) and self._video is not None:
            self._write_video(self._video, frame, arrived)
        elif isinstance(frame, av.AudioFrame) and self._audio is not None and self._size is not None:
            # audio waits for the first video frame: muxing starts when every stream has its size
            self._write_audio(self._audio, frame, arrived)

    def _write_video(self, stream: VideoStream, frame: av.VideoFrame, arrived: float) -> None:
        if self._size is None:  # the stream opens when the first frames gave its size and rate
            self._held.append((frame, arrived))
            waited = arrived - self._held[0][1]
            if len(self._held) < RATE_PROBE_FRAMES and (len(self._held) < 2 or waited < RATE_PROBE_S):
                return
            self._open_video(stream)
            held, self._held = self._held, []
            for each, at in held:
                self._encode_video(stream, each, at)
            return
        self._encode_video(stream, frame, arrived)

    def _open_video(self, stream: VideoStream) -> None:
        first = self._held[0][0]
        times = [float((f.pts or 0) * (f.time_base or VIDEO_CLOCK)) for f, _ in self._held]
        rate = frame_rate([b - a for a, b in itertools.pairwise(times)])
        self._size = (first.width, first.height)
        stream.width, stream.height = self._size
        stream.codec_context.framerate = Fraction(rate)  # what the session's probe reads as the rate
        log.info("WHIP relay on :%s: %sx%s at %s fps", self.port, first.width, first.height, rate)

    def _encode_video(self, stream: VideoStream, frame: av.VideoFrame, arrived: float) -> None:
        assert self._size is not None
        if (frame.width, frame.height) != self._size:
            frame = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p")
        clock = self._clocks.setdefault("video", _Clock(self._origin, VIDEO_CLOCK))
        frame.pts, frame.time_base = clock.next(arrived, frame.pts or 0), VIDEO_CLOCK
        if arrived - self._last_key >= self.keyframe_s:  # a keyframe per segment: the ladder cuts there
            frame.pict_type = PictureType.I
            self._last_key = arrived
        for packet in stream.encode(frame):
            self._container.mux(packet)

    def _write_audio(self, stream: AudioStream, frame: av.AudioFrame, arrived: float) -> None:
        time_base = Fraction(1, frame.sample_rate)
        clock = self._clocks.setdefault("audio", _Clock(self._origin, time_base))
        # Opus runs at 48 kHz: its RTP clock is the sample clock (the decoder's pts)
        frame.pts, frame.time_base = clock.next(arrived, frame.pts or 0), time_base
        for packet in stream.encode(frame):
            self._container.mux(packet)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=False)

    def _close(self) -> None:
        with contextlib.suppress(av.FFmpegError, ValueError):
            if self._size is not None:
                for stream in (self._video, self._audio):
                    if stream is not None:
                        for packet in stream.encode(None):
                            self._container.mux(packet)
        with contextlib.suppress(av.FFmpegError, ValueError):
            self._container.close()
