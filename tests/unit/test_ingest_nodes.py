"""Two ingest nodes on one machine share nothing but the run folder; a session reports until it ends.

No nginx, FFmpeg or Kafka here: the names and paths a node derives from its settings, and a session
whose source never probes (its reports must come while it waits, and stop with its disconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from events.base import Event
from events.ingest import IngestConnected, IngestDisconnected, IngestHealthReported, IngestProtocol
from infra.settings import Settings
from ingest_workers import nginx, session
from ingest_workers.control import IngestControl, node_name
from ingest_workers.errors import ProbeFailed
from ingest_workers.session import Source, StreamSession


def settings_of(tmp_path: Path, **ingest: Any) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "ingest": base.ingest.model_copy(update={"hls_dir": tmp_path / "hls", **ingest}),
            "stack": base.stack.model_copy(update={"run_dir": tmp_path / "run"}),
        }
    )


def test_two_nodes_on_one_machine_have_their_own_names_and_nginx_files(tmp_path: Path) -> None:
    first = settings_of(tmp_path, rtmp_port=nginx.DEFAULT_RTMP_PORT)  # the paths one node always used
    second = settings_of(tmp_path, rtmp_port=1936, origin_port=8180, cdn_port=8181, hook_port=8190)
    run = tmp_path / "run"
    assert (nginx.origin(first).prefix, nginx.cdn(first).prefix) == (run / "nginx/ingest", run / "nginx/cdn")
    assert nginx.origin(first).logs == run / "logs"
    assert nginx.origin(second).prefix == run / "nginx/ingest-1936/ingest"
    assert nginx.cdn(second).prefix == run / "nginx/ingest-1936/cdn"
    assert nginx.cdn(second).logs == run / "logs/ingest-1936"
    assert node_name(first.ingest) != node_name(second.ingest)
    assert node_name(second.ingest).endswith(":1936")
    assert IngestControl(second.ingest, Sink()).node == node_name(second.ingest)


def test_each_node_renders_its_own_ports_and_paths_into_its_config(tmp_path: Path) -> None:
    second = settings_of(tmp_path, rtmp_port=1936, origin_port=8180, cdn_port=8181, hook_port=8190)
    server = nginx.origin(second)
    server.prefix.mkdir(parents=True)
    nginx.render(server.template, server.conf, server.values())
    conf = server.conf.read_text()
    assert f"pid {server.prefix}/nginx.pid;" in conf and f"{server.logs}/nginx-ingest-error.log" in conf
    assert "listen 127.0.0.1:1936;" in conf and "127.0.0.1:8190/hooks/rtmp/publish" in conf


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish_many(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


async def test_a_session_reports_while_it_waits_and_not_after_its_disconnect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never_probes(args: Any, *, timeout_s: float) -> Any:
        await asyncio.sleep(0.05)
        raise ProbeFailed("no source yet")

    monkeypatch.setattr(session.probe, "probe_source", never_probes)
    monkeypatch.setattr(session, "PROBE_TIMEOUT_S", 0.5)
    settings = settings_of(tmp_path, health_interval_s=0.1).ingest
    sink = Sink()
    source = Source(protocol=IngestProtocol.RTMP, input_args=("-i", "x"), probe_args=("x",))
    stream = StreamSession(settings, sink, stream_id="s-1", source=source, node="host:1936")
    await asyncio.wait_for(stream.run(), 5)
    kinds = [type(e) for e in sink.events]
    assert kinds[0] is IngestConnected and kinds[-1] is IngestDisconnected
    reports = [e for e in sink.events if isinstance(e, IngestHealthReported)]
    assert len(reports) >= 3 and {r.session_id for r in reports} == {stream.session_id}
    assert (reports[0].fps, reports[0].input_bitrate_kbps) == (0.0, 0.0)  # no transcoder running yet
    assert sink.events[0].node == "host:1936"  # type: ignore[attr-defined]
    await asyncio.sleep(0.3)
    assert type(sink.events[-1]) is IngestDisconnected  # nothing reported after it
