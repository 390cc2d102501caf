"""What every page needs to know about the deployment: public URLs, edges, the Content-Security-Policy.

Pure: built from :class:`~infra.settings.Settings`, so it is unit-tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from infra.settings import Settings


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (what CSP source lists and Origin checks compare)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class Site:
    """Public addresses of the platform as a browser sees them."""

    name: str
    public_url: str
    hls_url: str
    edge_urls: tuple[str, ...]
    rtmp_url: str
    srt_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Site:
        edge = settings.edge
        edges = settings.web.edge_urls or [
            f"ws://{edge.host}:{edge.port}/",
            f"ws://{edge.host}:{edge.second_port}/",
        ]
        ingest = settings.ingest
        host = urlsplit(settings.api.public_url).hostname or ingest.host
        return cls(
            name=settings.web.site_name,
            public_url=settings.api.public_url.rstrip("/"),
            hls_url=ingest.public_hls_url.rstrip("/"),
            edge_urls=tuple(edges),
            rtmp_url=f"rtmp://{host}:{ingest.rtmp_port}/live",
            srt_url=f"srt://{host}:{ingest.srt_port}?streamid=STREAM_KEY&latency=200000",
        )

    def url(self, path: str) -> str:
        """The canonical absolute URL of a page path."""
        return self.public_url + path

    def master_playlist(self, stream_id: str) -> str:
        return f"{self.hls_url}/{stream_id}/master.m3u8"

    def thumbnail(self, stream_id: str) -> str:
        return f"{self.hls_url}/{stream_id}/thumb.jpg"

    @property
    def csp(self) -> str:
        """The pages' policy: own scripts and styles only, media and stills from the HLS tier, sockets
        to the edges. No inline script is allowed; page data travels in ``data-*`` attributes, and
        JSON-LD blocks are data, which CSP does not execute."""
        media = origin_of(self.hls_url)
        sockets = " ".join(dict.fromkeys(origin_of(u) for u in self.edge_urls))
        return "; ".join(
            (
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                f"img-src 'self' data: {media}",
                f"media-src 'self' blob: {media}",
                f"connect-src 'self' {media} {sockets}",
                "worker-src 'self' blob:",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            )
        )
