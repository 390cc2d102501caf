"""Pull ingest: a production feed the node fetches itself (RTMP, SRT, HLS or a file) instead of a push.

FFmpeg gets ``-protocol_whitelist`` limited to what the URL's scheme needs, so a remote HLS playlist
cannot make it open local files (``file:``) or other protocols (``concat:``, ``subfile:``,
``data:``...). Before FFmpeg runs, the URL's host is resolved and refused if any address is not
public (loopback, private, link-local such as 169.254.169.254, unspecified, in any spelling: decimal
or octal IPv4, IPv6, a name resolving there), and local files are refused: both only pass with
``allow_local`` (the operator's own feeds, tests). :func:`vet_http_source` then follows an HTTP(S)
source's redirects itself and checks every hop and every URI of an HLS playlist the same way.
A name that resolves differently when FFmpeg asks again (DNS rebinding) is not covered: run pull
workers where internal services are not reachable for untrusted feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
from urllib.parse import urljoin, urlsplit

import httpx

from events.codec import EventCodec
from events.ingest import IngestProtocol
from infra import logs
from infra.kafka import EventPublisher
from infra.settings import Settings
from ingest_workers.errors import IngestError
from ingest_workers.session import Source, StreamSession
from schemas import SCHEMAS_DIR

__all__ = ["ForbiddenSource", "UnsupportedSource", "pull_source", "run", "vet_http_source"]

WHITELISTS = {
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,tcp,tls",
    "srt": "srt,udp",
    "http": "http,tcp",  # HLS: the playlist and its segments
    "https": "https,http,tcp,tls,crypto",
    "file": "file",
}


MAX_REDIRECTS = 5
MAX_PLAYLIST_BYTES = 1 << 20


class UnsupportedSource(IngestError):
    """The URL's scheme is not one pull ingest reads."""


class ForbiddenSource(IngestError):
    """The URL names a local file or a non-public address (server-side request forgery)."""


def check_host(host: str | None, *, allow_local: bool = False) -> None:
    """Refuse a host any of whose addresses is not public (every spelling resolves to one)."""
    if not host:
        raise ForbiddenSource("the source URL has no host")
    if allow_local:  # the operator's own feed: nothing to protect, and no DNS needed
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise ForbiddenSource(f"cannot resolve the source host {host!r}") from e
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            raise ForbiddenSource(f"the source host {host!r} is a non-public address ({address})")


def pull_source(url: str, *, allow_local: bool = False) -> Source:
    """How FFmpeg reads `url`: live feeds as they come, files paced to real time (-re).

    Local files and non-public hosts are refused unless ``allow_local``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower() if parts.scheme else "file"
    whitelist = WHITELISTS.get(scheme)
    if whitelist is None or ("," in url.split(":", 1)[0]):
        raise UnsupportedSource(f"cannot pull {scheme!r} URLs; use one of {', '.join(WHITELISTS)}")
    if scheme == "file" and not allow_local:
        raise ForbiddenSource("pulling local files is not allowed for this source")
    if scheme != "file":
        check_host(parts.hostname, allow_local=allow_local)
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


def _playlist_uris(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    uris = [line for line in lines if line and not line.startswith("#")]
    for line in lines:
        if line.startswith("#") and 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return uris


async def vet_http_source(
    url: str, *, allow_local: bool = False, client: httpx.AsyncClient | None = None
) -> str:
    """Follow an HTTP(S) source's redirects here, checking each hop's host, then the URIs of the HLS
    playlist it names; returns the final URL (what FFmpeg is given, so it follows no redirect itself)."""
    own = client is None
    client = client or httpx.AsyncClient(timeout=10, follow_redirects=False)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            pull_source(url, allow_local=allow_local)
            async with client.stream("GET", url) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_PLAYLIST_BYTES:
                        break
            text = body.decode("utf-8", "replace")
            if text.lstrip().startswith("#EXTM3U"):
                for uri in _playlist_uris(text):
                    target = urljoin(url, uri)
                    if urlsplit(target).scheme not in ("http", "https"):
                        raise UnsupportedSource(f"the playlist names a {urlsplit(target).scheme!r} URI")
                    pull_source(target, allow_local=allow_local)
            return url
        raise ForbiddenSource(f"more than {MAX_REDIRECTS} redirects")
    except httpx.HTTPError as e:
        raise ForbiddenSource(f"cannot read the source ({type(e).__name__})") from e
    finally:
        if own:
            await client.aclose()


async def _pull(settings: Settings, stream_id: str, url: str) -> None:
    async with EventPublisher(
        settings.kafka, EventCodec.load(SCHEMAS_DIR), producer="ingest_workers"
    ) as publisher:
        session = StreamSession(
            settings.ingest,
            publisher,
            stream_id=stream_id,
            source=pull_source(url, allow_local=True),  # vetted by run()
            node=f"{socket.gethostname()}:pull",  # not an RTMP node (see control.node_name)
        )
        runner = asyncio.create_task(session.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def run(settings: Settings, stream_id: str, url: str, *, allow_local: bool = True) -> int:
    """`esports ingest pull --stream ID URL`: transcode a feed into the node's HLS folder until it ends.

    The operator's command line may name local files and addresses (``allow_local``)."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        pull_source(url, allow_local=allow_local)
        if urlsplit(url).scheme.lower() in ("http", "https"):
            url = asyncio.run(vet_http_source(url, allow_local=allow_local))
        asyncio.run(_pull(settings, stream_id, url))
    except IngestError as e:
        logging.getLogger(__name__).error("%s", e)
        return 1
    return 0
