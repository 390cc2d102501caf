"""Pull ingest: a production feed the node fetches itself (RTMP, SRT, HLS or a file) instead of a push.

FFmpeg gets ``-protocol_whitelist`` limited to what the URL's scheme needs, so a remote HLS playlist
cannot make it open local files (``file:``) or other protocols. It cannot stop a playlist from naming
internal HTTP addresses: run pull workers where internal services are not reachable, or pull only
from feeds you trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from urllib.parse import urlsplit

from events.codec import EventCodec
from events.ingest import IngestProtocol
from infra import logs
from infra.kafka import EventPublisher
from infra.settings import Settings
from ingest_workers.errors import IngestError
from ingest_workers.session import Source, StreamSession
from schemas import SCHEMAS_DIR

__all__ = ["UnsupportedSource", "pull_source", "run"]

WHITELISTS = {
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,tcp,tls",
    "srt": "srt,udp",
    "http": "http,tcp",  # HLS: the playlist and its segments
    "https": "https,http,tcp,tls,crypto",
    "file": "file",
}


class UnsupportedSource(IngestError):
    """The URL's scheme is not one pull ingest reads."""


def pull_source(url: str) -> Source:
    """How FFmpeg reads `url`: live feeds as they come, files paced to real time (-re)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "file"
    whitelist = WHITELISTS.get(scheme)
    if whitelist is None:
        raise UnsupportedSource(f"cannot pull {scheme!r} URLs; use one of {', '.join(WHITELISTS)}")
    target = url if parts.scheme else f"file:{url}"
    options: tuple[str, ...] = ("-protocol_whitelist", whitelist)
    if scheme == "rtmp":
        options += ("-rtmp_live", "live")
    paced = ("-re",) if scheme == "file" else ()  # a file is read at the pace of a live feed
    protocol = IngestProtocol.SRT if scheme == "srt" else IngestProtocol.RTMP
    return Source(
        protocol=protocol,
        input_args=(*options, *paced, "-i", target),
        probe_args=(*options, target),
        live=False,
        encoder=f"pull:{scheme}",
    )


async def _pull(settings: Settings, stream_id: str, url: str) -> None:
    async with EventPublisher(
        settings.kafka, EventCodec.load(SCHEMAS_DIR), producer="ingest_workers"
    ) as publisher:
        session = StreamSession(
            settings.ingest,
            publisher,
            stream_id=stream_id,
            source=pull_source(url),
            node=f"{socket.gethostname()}:pull",  # not an RTMP node (see control.node_name)
        )
        runner = asyncio.create_task(session.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def run(settings: Settings, stream_id: str, url: str) -> int:
    """`esports ingest pull --stream ID URL`: transcode a feed into the node's HLS folder until it ends."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        pull_source(url)
        asyncio.run(_pull(settings, stream_id, url))
    except IngestError as e:
        logging.getLogger(__name__).error("%s", e)
        return 1
    return 0
