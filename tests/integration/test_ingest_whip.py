"""WHIP ingest end to end: an aiortc publisher does the RFC 9725 exchange against a real node.

The API stack of ``test_api_support`` (its authorize endpoint over ASGI) and a real ingest node of
``test_ingest_support`` on free ports (the WHIP port too). The publisher is aiortc's own client side:
a ``MediaPlayer`` looping a 320x240, 10 fps test pattern with a tone (made by the system ``ffmpeg``),
sent as VP8 + Opus. A valid key gets ``201`` with an SDP answer and a ``Location``; the stream
goes live as ``whip`` and its master and media playlists fill with segments through the cache tier;
``DELETE`` of the ``Location`` ends the session; a dropped publisher's peer connection is closed; a
second publisher with the same key replaces the first and the same session goes on with its media.
Wrong or missing keys, a wrong content type and a body that is not SDP are refused before any media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from events.ingest import IngestConnected, IngestDisconnected, IngestProtocol, SegmentPublished
from infra.settings import Settings
from ingest_workers.commands import Drop, DropReason
from tests.integration.test_api_support import eventually
from tests.integration.test_ingest_support import IngestEnv, open_ingest_env, wait_playable

pytestmark = pytest.mark.integration

SDP = {"Content-Type": "application/sdp"}


@pytest.fixture(scope="module")
async def env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    async with open_ingest_env(settings, tmp_path_factory.mktemp("whip")) as env:
        yield env


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s test pattern with a tone: small frames, low rate (the publisher loops it)."""
    path = tmp_path_factory.mktemp("whip-media") / "pattern.mkv"
    subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"),
            *("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


def whip_url(env: IngestEnv, path: str = "/whip") -> str:
    return f"http://{env.ingest.host}:{env.ingest.whip_port}{path}"


class Publisher:
    """An aiortc WHIP client publishing the test pattern (video and audio, send-only)."""

    def __init__(self, media: Path) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.player = MediaPlayer(str(media), loop=True)
        for track in (self.player.video, self.player.audio):
            assert track is not None
            self.pc.addTransceiver(track, direction="sendonly")

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def publish(self, url: str, key: str) -> httpx.Response:
        """POST the offer; on 201 apply the answer (the media then flows)."""
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            headers = {**SDP, "Authorization": f"Bearer {key}"}
            response = await client.post(url, content=await self.offer(), headers=headers)
        if response.status_code == 201:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        return response

    async def close(self) -> None:
        await self.pc.close()
        if self.player.video is not None:
            self.player.video.stop()
        if self.player.audio is not None:
            self.player.audio.stop()


@contextlib.asynccontextmanager
async def publishing(media: Path) -> AsyncIterator[Publisher]:
    publisher = Publisher(media)
    try:
        yield publisher
    finally:
        await publisher.close()


async def _refusals(env: IngestEnv) -> float:
    value = env.node.control.metrics.get_sample_value("ingest_publish_total", {"outcome": "refused"})
    return value or 0.0


async def _send(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.post(url, content=body, headers=headers)


async def test_a_whip_publisher_goes_live_and_delete_ends_it(
    env: IngestEnv, pattern: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel_id, key = await env.stream_key()
    async with publishing(pattern) as publisher:
        response = await publisher.publish(whip_url(env, "/whip/obs"), key)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        location = response.headers["location"]
        assert location.startswith("/whip/sessions/")
        assert response.text.startswith("v=0") and "a=candidate" in response.text

        stream_id = await env.stream_for(channel_id, timeout_s=15)
        connected = env.sink.of(IngestConnected, stream_id)
        assert [e.protocol for e in connected] == [IngestProtocol.WHIP]
        master = await wait_playable(env, stream_id, segments=2, timeout_s=30)
        assert len(master.playlists) >= 2  # the source's top rung and the ladder below it

        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            ended = await client.delete(whip_url(env, location))
            assert ended.status_code == 200, ended.text
            assert (await client.delete(whip_url(env, location))).status_code == 404

        async def disconnected() -> list[IngestDisconnected]:
            return env.sink.of(IngestDisconnected, stream_id)

        await eventually(disconnected, timeout_s=15)
        assert stream_id not in env.node.control.sessions
    assert "WHIP publish accepted" in caplog.text and key not in caplog.text  # the key is never logged
    assert not any(key in repr(e) for e in env.sink.events)


async def test_a_new_whip_publisher_replaces_the_previous_one_until_the_stream_is_dropped(
    env: IngestEnv, pattern: Path
) -> None:
    channel_id, key = await env.stream_key()
    async with publishing(pattern) as first, publishing(pattern) as second:
        assert (await first.publish(whip_url(env), key)).status_code == 201
        stream_id = await env.stream_for(channel_id, timeout_s=15)
        session = env.node.control.sessions[stream_id]
        await wait_playable(env, stream_id, segments=1, timeout_s=30)

        assert (await second.publish(whip_url(env), key)).status_code == 201  # e.g. OBS reconnecting

        async def first_closed() -> bool:
            return first.pc.connectionState in ("closed", "failed")

        async def second_connected() -> bool:
            return second.pc.connectionState == "connected"

        await eventually(first_closed, timeout_s=15)
        await eventually(second_connected, timeout_s=15)
        published = len(env.sink.of(SegmentPublished, stream_id))

        async def segments_again() -> bool:  # the second publisher's media reaches the same session
            return len(env.sink.of(SegmentPublished, stream_id)) >= published + 4

        await eventually(segments_again, timeout_s=20)
        assert env.node.control.sessions.get(stream_id) is session
        assert not env.sink.of(IngestDisconnected, stream_id)

        # the log says the stream ended: the node closes the publisher's peer connection
        assert await env.node.control.drop(Drop(stream_id=stream_id, reason=DropReason.STREAM_ENDED))

        async def second_closed() -> bool:
            return second.pc.connectionState in ("closed", "failed")

        await eventually(second_closed, timeout_s=15)
        await eventually(lambda: _gone(env, stream_id), timeout_s=15)
    async with publishing(pattern) as again:  # the stream ended: its key no longer publishes to it
        assert (await again.publish(whip_url(env), key)).status_code == 403


async def _gone(env: IngestEnv, stream_id: str) -> bool:
    await asyncio.sleep(0)
    return stream_id not in env.node.control.sessions


async def test_wrong_keys_are_refused_and_counted(env: IngestEnv, pattern: Path) -> None:
    before = await _refusals(env)
    async with publishing(pattern) as publisher:
        response = await publisher.publish(whip_url(env), "not-a-stream-key")
        assert response.status_code == 403
        assert publisher.pc.remoteDescription is None
    async with publishing(pattern) as publisher:
        no_key = await _send(whip_url(env), (await publisher.offer()).encode(), SDP)
    assert no_key.status_code == 401 and "Bearer" in no_key.text
    assert await _refusals(env) == before + 2


async def test_bad_requests_get_clear_errors(env: IngestEnv) -> None:
    _, key = await env.stream_key()
    auth = {"Authorization": f"Bearer {key}"}
    wrong_type = await _send(whip_url(env), b"v=0\r\n", {**auth, "Content-Type": "application/json"})
    assert wrong_type.status_code == 415 and "application/sdp" in wrong_type.text
    not_sdp = await _send(whip_url(env), b"hello", {**auth, **SDP})
    assert not_sdp.status_code == 400 and "SDP" in not_sdp.text
    no_media = await _send(
        whip_url(env), b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", {**auth, **SDP}
    )
    assert no_media.status_code == 400 and "no audio or video" in no_media.text
    broken = b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
    unusable = await _send(whip_url(env), broken, {**auth, **SDP})
    assert unusable.status_code == 400 and "cannot use this SDP offer" in unusable.text
