"""Which publishers a command from the log drops, and how the node drops them (no nginx, FFmpeg or Kafka)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from events.base import Event
from events.channels import ChannelStreamKeyRotated
from events.ingest import IngestProtocol
from events.streams import StreamEnded, StreamEndReason, StreamWentLive
from infra.settings import Settings
from ingest_workers import nginx
from ingest_workers.commands import Drop, DropReason, Publisher, decide
from ingest_workers.control import ApiAuthorizer, Grant, IngestControl, create_hook_app, session_settings
from ingest_workers.session import Source, StreamSession
from tests.unit.event_samples import sample_event

ON_NODE = (
    Publisher(stream_id="s-1", channel_id="c-1", key_id="k-old"),
    Publisher(stream_id="s-2", channel_id="c-1", key_id="k-new"),  # came back with the new key already
    Publisher(stream_id="s-3", channel_id="c-2", key_id="k-3"),
    Publisher(stream_id="s-4"),  # a pulled feed: no channel, no key
)


def _ended(stream_id: str, reason: StreamEndReason) -> Event:
    return sample_event(StreamEnded, stream_id=stream_id, channel_id="c-1", reason=reason)


def _rotated(channel_id: str, key_id: str) -> Event:
    return sample_event(ChannelStreamKeyRotated, channel_id=channel_id, key_id=key_id)


@pytest.mark.parametrize(
    ("event", "dropped"),
    [
        (_ended("s-1", StreamEndReason.ENDED_BY_OWNER), [("s-1", DropReason.STREAM_ENDED)]),
        (_ended("s-1", StreamEndReason.ENDED_BY_MODERATOR), [("s-1", DropReason.STREAM_ENDED)]),
        (_ended("s-4", StreamEndReason.INGEST_TIMEOUT), [("s-4", DropReason.STREAM_ENDED)]),
        (_ended("s-1", StreamEndReason.UNKNOWN), [("s-1", DropReason.STREAM_ENDED)]),
        (_ended("s-1", StreamEndReason.PUBLISHER_STOPPED), []),  # the node reported that itself
        (_ended("s-9", StreamEndReason.ENDED_BY_OWNER), []),  # published on another node
        (_rotated("c-1", "k-new"), [("s-1", DropReason.KEY_ROTATED)]),  # not s-2: it holds the new key
        (_rotated("c-2", "k-4"), [("s-3", DropReason.KEY_ROTATED)]),
        (_rotated("c-9", "k-9"), []),
        (sample_event(StreamWentLive, stream_id="s-1"), []),
    ],
)
def test_what_a_command_drops(event: Event, dropped: list[tuple[str, DropReason]]) -> None:
    assert decide(event, ON_NODE) == [Drop(stream_id=s, reason=r) for s, r in dropped]


def test_a_rotation_drops_every_publisher_of_the_channel_when_the_key_is_unknown() -> None:
    unknown = [Publisher(stream_id="s-1", channel_id="c-1")]  # an authorizer that names no key
    assert decide(_rotated("c-1", "k-new"), unknown) == [Drop(stream_id="s-1", reason=DropReason.KEY_ROTATED)]


async def test_the_authorizer_reads_the_grant_and_tolerates_an_api_without_key_ids() -> None:
    answers = iter(
        [
            {"channel_id": "c-1", "key_id": "sk_1", "stream_id": "s-1", "created": False},
            {"channel_id": "c-1", "stream_id": "s-1", "created": False},
            {"channel_id": "c-1", "stream_id": "s-1", "created": False, "dvr_window_s": 0},
        ]
    )

    def api(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"stream_key": "live_x"}
        return httpx.Response(200, json=next(answers))

    async with httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="http://api") as client:
        authorizer = ApiAuthorizer(client, "token")
        assert await authorizer.authorize("live_x") == Grant(stream_id="s-1", channel_id="c-1", key_id="sk_1")
        assert await authorizer.authorize("live_x") == Grant(stream_id="s-1", channel_id="c-1")
        assert await authorizer.authorize("live_x") == Grant(
            stream_id="s-1", channel_id="c-1", dvr_window_s=0
        )


def test_a_channels_dvr_window_replaces_the_nodes_for_its_sessions() -> None:
    node = Settings().ingest.model_copy(update={"dvr_window_s": 7200.0})
    assert session_settings(node, Grant(stream_id="s-1")) is node  # never chose: the node's
    assert session_settings(node, Grant(stream_id="s-1", dvr_window_s=0)).dvr_window_s == 0
    short = session_settings(node, Grant(stream_id="s-1", dvr_window_s=600))
    assert (short.dvr_window_s, short.segment_s, node.dvr_window_s) == (600, node.segment_s, 7200.0)


class Sink:
    async def publish_many(self, events: Sequence[Event]) -> None:
        return None


class Disconnector:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def __call__(self, stream_id: str) -> bool:
        self.asked.append(stream_id)
        return self.answer


def _control(tmp_path: Path) -> IngestControl:
    settings = Settings().ingest.model_copy(update={"hls_dir": tmp_path / "hls"})
    return IngestControl(settings, Sink(), node="test:1935")


def _live(
    control: IngestControl, stream_id: str, *, live: bool = True, grant: Grant | None = None
) -> asyncio.Task[None]:
    """A session registered as running (its task just sleeps), as ``attach`` would leave it."""
    source = Source(protocol=IngestProtocol.RTMP, input_args=("-i", "x"), probe_args=("x",), live=live)
    control.sessions[stream_id] = StreamSession(
        control.settings, control.sink, stream_id=stream_id, source=source, node=control.node
    )
    control.grants[stream_id] = grant or Grant(stream_id=stream_id)
    task = asyncio.create_task(asyncio.sleep(60))
    control.tasks[stream_id] = task
    return task


def _dropped(control: IngestControl, reason: DropReason) -> float:
    return (
        control.metrics.get_sample_value("ingest_publishers_dropped_total", {"reason": reason.value}) or 0.0
    )


async def test_an_ended_stream_is_dropped_at_once_and_refused_afterwards(tmp_path: Path) -> None:
    control = _control(tmp_path)
    rtmp = control.disconnectors[IngestProtocol.RTMP] = Disconnector(True)
    task = _live(control, "s-1", grant=Grant(stream_id="s-1", channel_id="c-1", key_id="k-1"))
    assert control.publishers() == [Publisher(stream_id="s-1", channel_id="c-1", key_id="k-1")]

    assert await control.drop(Drop(stream_id="s-1", reason=DropReason.STREAM_ENDED))
    assert rtmp.asked == ["s-1"] and not task.cancelled()  # the session ends the ordinary way
    assert control.ended("s-1") and not control.ended("s-2")
    assert control.sessions["s-1"]._ending == "stream ended"
    assert _dropped(control, DropReason.STREAM_ENDED) == 1
    assert not await control.drop(Drop(stream_id="s-2", reason=DropReason.STREAM_ENDED))  # not here
    task.cancel()


async def test_a_rotated_key_keeps_the_grace_period_for_a_comeback_with_the_new_key(tmp_path: Path) -> None:
    control = _control(tmp_path)
    control.disconnectors[IngestProtocol.RTMP] = Disconnector(True)
    task = _live(control, "s-1")
    assert await control.drop(Drop(stream_id="s-1", reason=DropReason.KEY_ROTATED))
    assert control.sessions["s-1"]._ending is None and not control.ended("s-1")
    assert _dropped(control, DropReason.KEY_ROTATED) == 1
    task.cancel()


async def test_a_pulled_feed_or_a_publisher_the_server_lost_is_stopped_by_its_session(tmp_path: Path) -> None:
    control = _control(tmp_path)
    rtmp = control.disconnectors[IngestProtocol.RTMP] = Disconnector(False)
    pulled, lost = _live(control, "pulled", live=False), _live(control, "lost")
    assert await control.drop(Drop(stream_id="pulled", reason=DropReason.STREAM_ENDED))
    assert await control.drop(Drop(stream_id="lost", reason=DropReason.KEY_ROTATED))
    await asyncio.gather(pulled, lost, return_exceptions=True)
    assert pulled.cancelled() and lost.cancelled()
    assert rtmp.asked == ["lost"]  # a pulled feed has no publisher to disconnect


async def test_the_hook_refuses_a_publisher_coming_back_to_an_ended_stream(tmp_path: Path) -> None:
    control = _control(tmp_path)
    control.disconnectors[IngestProtocol.RTMP] = Disconnector(True)
    task = _live(control, "s-1")
    await control.drop(Drop(stream_id="s-1", reason=DropReason.STREAM_ENDED))
    task.cancel()

    class SameStream:
        async def authorize(self, stream_key: str, publisher_addr: str | None = None) -> Grant | None:
            return Grant(stream_id="s-1", channel_id="c-1", key_id="k-1")

    app = create_hook_app(control.settings, control, SameStream())
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
        answer = await client.post("/hooks/rtmp/publish", data={"app": "live", "name": "live_key"})
    assert answer.status_code == 403


def test_the_ingest_nginx_serves_rtmp_control_on_a_private_unix_socket(tmp_path: Path) -> None:
    settings = Settings()
    settings = settings.model_copy(
        update={"stack": settings.stack.model_copy(update={"run_dir": tmp_path / "run"})}
    )
    server, cache = nginx.origin(settings), nginx.cdn(settings)
    assert server.control and not cache.control and server.control_socket is None  # until prepared
    server._control_dir = tmp_path / "ctl"  # what prepare() makes with mkdtemp (mode 0700)
    server.prefix.mkdir(parents=True)
    nginx.render(server.template, server.conf, server.values())
    conf = server.conf.read_text()
    assert f"listen unix:{tmp_path / 'ctl' / 'control.sock'};" in conf
    control_block = conf[conf.index("listen unix:") :]
    assert "rtmp_control all;" in control_block
    assert "rtmp_control" not in conf[: conf.index("listen unix:")]  # not on the public origin port
