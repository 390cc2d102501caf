"""The Low-Latency HLS origin: playlists with blocking reloads, and preload-hinted parts, waited for.

nginx serves files as they are; it cannot hold a request until the part a client asked for exists.
In Low-Latency mode the origin nginx forwards every playlist to this app, and every part file it
does not have yet, both on 127.0.0.1 only. The app reads the files the sessions write (it knows no
session: it watches ``hls_dir``), so it works the same for every stream of the node:

* ``GET /hls/STREAM/NAME.m3u8?_HLS_msn=M&_HLS_part=P`` answers once the playlist contains that part
  (:mod:`ingest_workers.blocking_reload`), 400 when it is too far ahead, 503 after three target
  durations; with ``_HLS_skip=YES`` as a delta update. A blocking answer may be cached (it contains
  the part for good); an ordinary reload for a second.
* ``GET /hls/STREAM/RUN/RENDITION/part_N.m4s`` (a preload hint) answers once FFmpeg renamed the part
  into place, if part N-1 exists already (the next part, not any number), cacheable for ever.

The cache tier keys playlists by their query, so the many viewers asking for the next part make one
request here (``proxy_cache_lock``). ``/metrics`` counts what the app answered.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from ingest_workers import blocking_reload
from ingest_workers.blocking_reload import Answer
from ingest_workers.ladder import PART_PREFIX

__all__ = ["create_ll_origin"]

POLL_S = 0.01  # how often a held request looks at its file (a stat; the file is read when it changed)
PLAYLIST = "application/vnd.apple.mpegurl"
SEGMENT = "video/iso.segment"
NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]+$")  # never . or .. (the raw path comes through)
RENDITION = re.compile(r"^[A-Za-z0-9_-]+$")
PART = re.compile(rf"^{PART_PREFIX}(\d+)\.m4s$")
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS"}
BLOCKING_MAX_AGE_TARGETS = 6  # a blocking answer stays true; cache it for a while
FOREVER = "public, max-age=31536000, immutable"


def create_ll_origin(hls_dir: Path, *, playlist_max_age: int = 1, part_wait_s: float = 6.0) -> Starlette:
    """The app serving `hls_dir` (see the module docstring)."""
    registry = CollectorRegistry()
    answered = Counter(
        "ll_origin_responses",
        "Responses of the Low-Latency HLS origin, by kind and status.",
        ["kind", "status"],
        registry=registry,
    )

    async def playlist(request: Request) -> Response:
        response = await _playlist(request, hls_dir, playlist_max_age)
        answered.labels("playlist", str(response.status_code)).inc()
        return response

    async def part(request: Request) -> Response:
        response = await _part(request, hls_dir, part_wait_s)
        answered.labels("part", str(response.status_code)).inc()
        return response

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/hls/{stream}/{name}.m3u8", playlist, methods=["GET", "HEAD", "OPTIONS"]),
            Route("/hls/{stream}/{run}/{rendition}/{file}", part, methods=["GET", "HEAD", "OPTIONS"]),
            Route("/metrics", metrics),
            Route("/health", lambda _: PlainTextResponse("ok\n")),
        ]
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


async def _playlist(request: Request, hls_dir: Path, max_age: int) -> Response:
    stream, name = request.path_params["stream"], request.path_params["name"]
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS)
    if not NAME.match(stream) or not RENDITION.match(name):
        return _error(404)
    asked = blocking_reload.parse_request(dict(request.query_params))
    if asked is None:
        return _error(400)
    path = hls_dir / stream / f"{name}.m3u8"
    deadline: float | None = None
    stamp, text = None, ""
    while True:
        now_stamp = _stamp(path)
        if now_stamp is None:
            return _error(404)
        if now_stamp != stamp:
            try:
                stamp, text = now_stamp, path.read_text()
            except FileNotFoundError:  # the replay was deleted meanwhile
                return _error(404)
            position = blocking_reload.position_of(text)
            answer = blocking_reload.decide(position, asked)
            if answer is Answer.NOW:
                return _playlist_response(text, position, asked, max_age)
            if answer is Answer.BAD_REQUEST:
                return _error(400)
            if deadline is None:
                deadline = time.monotonic() + blocking_reload.timeout_s(position)
        if deadline is not None and time.monotonic() > deadline:
            return _error(503)
        await asyncio.sleep(POLL_S)


def _playlist_response(
    text: str, position: blocking_reload.Position, asked: blocking_reload.Request, max_age: int
) -> Response:
    if asked.skip and not position.ended:
        text = blocking_reload.delta_update(text)
    age = max_age
    if asked.msn is not None:
        age = max(max_age, int(BLOCKING_MAX_AGE_TARGETS * position.target_s))
    headers = {**CORS, "Cache-Control": f"public, max-age={age}"}
    return Response(text, media_type=PLAYLIST, headers=headers)


async def _part(request: Request, hls_dir: Path, wait_s: float) -> Response:
    params = request.path_params
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS)
    match = PART.match(params["file"])
    if not match or not all(NAME.match(params[k]) for k in ("stream", "run")):
        return _error(404)
    if not RENDITION.match(params["rendition"]):
        return _error(404)
    folder = hls_dir / params["stream"] / params["run"] / params["rendition"]
    path = folder / params["file"]
    number = int(match[1])
    previous = folder / f"{PART_PREFIX}{number - 1:05d}.m4s"  # FFmpeg's %05d
    if not path.exists() and number and not previous.exists():
        return _error(404)  # not the next part: nothing to wait for
    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() > deadline or not folder.is_dir():
            return _error(404)
        await asyncio.sleep(POLL_S)
    return FileResponse(path, media_type=SEGMENT, headers={**CORS, "Cache-Control": FOREVER})


def _error(status: int) -> Response:
    """Errors carry no Cache-Control: the cache tier keeps none of them."""
    return Response(status_code=status, headers=CORS)
