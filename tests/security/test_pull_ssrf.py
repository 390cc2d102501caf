"""Server-side request forgery through pull ingest: refused with a clear error before FFmpeg runs.

Internal addresses in every spelling (loopback, RFC 1918, link-local metadata, unspecified, IPv6,
decimal and octal IPv4, names resolving to loopback), local files and FFmpeg's other protocols are
refused by :func:`~ingest_workers.pull.pull_source`; redirects and HLS playlists pointing inside are
refused by :func:`~ingest_workers.pull.vet_http_source`, which follows them itself. The feed server
of the redirect cases is an in-process httpx transport at a public address literal (there is no
public server to reach from a test); the checks under test are the module's own.
"""

from __future__ import annotations

import httpx
import pytest

from ingest_workers.errors import IngestError
from ingest_workers.pull import ForbiddenSource, UnsupportedSource, pull_source, vet_http_source
from tests.security.tally import TALLY

PUBLIC = "http://93.184.215.14"  # a public address literal: passes the host check without DNS

INTERNAL = [
    "http://127.0.0.1/x.m3u8",
    "http://127.0.0.1:8080/hls/master.m3u8",
    "https://10.0.0.5/live.m3u8",
    "http://10.255.255.1/a",
    "http://172.16.0.1/a",
    "http://192.168.1.1/a",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/a.m3u8",
    "http://[::ffff:127.0.0.1]/a",
    "http://[fd00::1]/a",
    "http://[fe80::1]/a",
    "http://0.0.0.0/a",
    "http://0/a",
    "http://2130706433/a",
    "http://017700000001/a",
    "http://0177.0.0.1/a",
    "http://0x7f.0.0.1/a",
    "http://127.1/a",
    "http://localhost/a.m3u8",
    "http://LOCALHOST:80/a",
    "http://100.64.0.1/a",
    "rtmp://127.0.0.1/live/key",
    "rtmps://10.1.1.1/live/key",
    "srt://192.168.0.2:9000",
    "http://user:pw@127.0.0.1/a",
    "http://no-such-host.invalid/a",
]
SCHEMES = [
    "/etc/passwd",
    "file:///etc/passwd",
    "FILE:/etc/shadow",
    "concat:http://93.184.215.14/a|file:/etc/passwd",
    "subfile,,start,0,end,0,,:/etc/passwd",
    "data:text/plain;base64,aGVsbG8=",
    "pipe:0",
    "gopher://93.184.215.14/",
    "ftp://93.184.215.14/feed.ts",
    "tcp://93.184.215.14:80",
    "udp://93.184.215.14:9000",
    "crypto:file:/etc/passwd",
    "hls+http://93.184.215.14/a.m3u8",
    "cache:http://93.184.215.14/a",
    "async:file:/etc/passwd",
    "unix:/run/redis.sock",
    "ftp+file:/etc/passwd",
]


@pytest.mark.parametrize("url", INTERNAL + SCHEMES)
def test_pull_urls_to_the_inside_are_refused(url: str) -> None:
    with pytest.raises((ForbiddenSource, UnsupportedSource)) as refused:
        pull_source(url)
    TALLY.tried(refused=True)
    assert str(refused.value)  # a clear error, not FFmpeg's


def test_operator_feeds_still_pass() -> None:
    assert pull_source(f"{PUBLIC}/master.m3u8").input_args[-1] == f"{PUBLIC}/master.m3u8"
    assert pull_source("/srv/feeds/match.mp4", allow_local=True).input_args[-1] == "file:/srv/feeds/match.mp4"
    assert pull_source("http://127.0.0.1:8080/x.m3u8", allow_local=True)


def _feed(routes: dict[str, httpx.Response]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        return routes.get(request.url.path, httpx.Response(404))

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), follow_redirects=False)


def _redirect(to: str) -> httpx.Response:
    return httpx.Response(302, headers={"Location": to})


PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{}\n"
MASTER = (
    '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="a",URI="{}"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n'
)
INSIDE = [
    {"/a.m3u8": _redirect("http://127.0.0.1:6379/")},
    {"/a.m3u8": _redirect("http://169.254.169.254/latest/meta-data/")},
    {"/a.m3u8": _redirect("/b"), "/b": _redirect("http://[::1]/c")},
    {"/a.m3u8": _redirect("file:///etc/passwd")},
    {"/a.m3u8": _redirect("http://2130706433/")},
    {"/a.m3u8": httpx.Response(200, text=PLAYLIST.format("http://10.0.0.1/seg.ts"))},
    {"/a.m3u8": httpx.Response(200, text=PLAYLIST.format("file:///etc/passwd"))},
    {"/a.m3u8": httpx.Response(200, text=PLAYLIST.format("http://localhost:9092/x.ts"))},
    {"/a.m3u8": httpx.Response(200, text=MASTER.format("http://127.0.0.1/audio.m3u8"))},
    {"/a.m3u8": _redirect("/a.m3u8")},  # a redirect loop
]


@pytest.mark.parametrize("routes", INSIDE)
async def test_redirects_and_playlists_to_the_inside_are_refused(routes: dict[str, httpx.Response]) -> None:
    async with _feed(routes) as client:
        with pytest.raises(IngestError):
            await vet_http_source(f"{PUBLIC}/a.m3u8", client=client)
    TALLY.tried(refused=True)


async def test_a_public_redirect_is_followed_and_handed_to_ffmpeg_resolved() -> None:
    routes = {
        "/a.m3u8": _redirect(f"{PUBLIC}/live/master.m3u8"),
        "/live/master.m3u8": httpx.Response(200, text=MASTER.format("audio.m3u8")),
    }
    async with _feed(routes) as client:
        assert await vet_http_source(f"{PUBLIC}/a.m3u8", client=client) == f"{PUBLIC}/live/master.m3u8"
