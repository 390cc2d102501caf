"""`esports demo`: a real RTMP stream to a demo channel, so `make up` shows a newcomer something live.

The demo account, its channel (``ingest.demo_channel``) and a fresh stream key are made through the
public API like a streamer would (the account's password is kept in ``<run_dir>/demo-account.json``,
mode 0600). FFmpeg then pushes a 720p30 test pattern with a burned-in wall clock and a tone, like OBS
would, until interrupted; it is restarted with backoff if it dies. While the stream is live, the demo
streamer keeps a poll running on it (:class:`DemoPolls`, through the API like a streamer would), so the
stream page shows one from the first minute.

A demo that starts is a new broadcast. A stream the demo channel still has live at that point was
left by a platform that stopped under it: the ingest node ended it with its VOD on the way down, but
the lifecycle agent may not have read that yet (or a crash never said so), and a push authorized onto
it would feed an ended stream that never goes live again. So the demo first asks the API to end such
a leftover, like its streamer would, and waits until the channel shows nothing live
(:func:`end_leftover_streams`); the push then gets a stream of its own. While the demo runs, a push
restarted within ``ingest.end_grace_s`` continues the same stream.

The publishing FFmpeg is the *publisher* here (OBS's stand-in), so the demo key is on its command
line; the ingest side never sees it anywhere but in the hook.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from infra import logs
from infra.settings import Settings

__all__ = ["DemoPolls", "demo_command", "end_leftover_streams", "ensure_demo_key", "run"]

log = logging.getLogger(__name__)
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")  # fonts-dejavu-core
USERNAME = "demo_streamer"
MAX_BACKOFF_S = 30.0
LEFTOVER_WAIT_S = 60.0  # the lifecycle agent and projector catching up after a platform restart
POLL_S = 300  # each demo poll runs five minutes; the next opens once it has closed
POLLS = (
    ("Who takes the grand final?", ["Team Red", "Team Blue"]),
    ("Best map of the day?", ["Mirage", "Inferno", "Nuke", "Ancient"]),
    ("How is the stream quality?", ["Crisp", "Fine", "Blurry"]),
)


def demo_command(
    url: str, *, size: str = "1280x720", fps: int = 30, seconds: float | None = None
) -> list[str]:
    """FFmpeg pushing testsrc2 with the wall clock drawn on it and a 440 Hz tone, as OBS would (2 s GOP)."""
    clock = (
        f"drawtext=fontfile={FONT}:text='%{{localtime\\:%H\\\\\\:%M\\\\\\:%S}}.%{{eif\\:mod(n\\,{fps})\\:d\\:2}}':"
        "x=(w-tw)/2:y=h-2*th:fontsize=h/12:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8"
    )
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}", "-f", "lavfi", "-i", "sine=frequency=440",
        *(["-t", str(seconds)] if seconds else []),
        "-vf", clock, "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", "2500k",
        "-maxrate", "2500k", "-bufsize", "5000k", "-g", str(2 * fps), "-keyint_min", str(2 * fps),
        "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
        "-f", "flv", url,
    ]  # fmt: skip


def _account(settings: Settings) -> dict[str, str]:
    path = settings.stack.run_dir / "demo-account.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    account = {"username": USERNAME, "password": secrets.token_urlsafe(18)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(account))
    return account


def _ok(response: httpx.Response, *allowed: int) -> dict[str, Any]:
    if response.status_code not in allowed:
        request = response.request
        raise RuntimeError(
            f"{request.method} {request.url.path}: {response.status_code} {response.text[:200]}"
        )
    return dict(response.json()) if response.content else {}


def _login(settings: Settings, client: httpx.Client) -> dict[str, str]:
    tokens = _ok(client.post("/api/v1/auth/login", json=_account(settings)), 200)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def ensure_demo_key(settings: Settings, client: httpx.Client) -> str:
    """Register the demo streamer and its channel if missing; issue a fresh stream key."""
    account = _account(settings)
    _ok(client.post("/api/v1/auth/register", json=account), 201, 409)
    auth = _login(settings, client)
    slug = settings.ingest.demo_channel
    channel = {"slug": slug, "display_name": "Demo", "description": "A test pattern with a clock"}
    _ok(client.post("/api/v1/channels", json=channel, headers=auth), 201, 409)
    issued = _ok(client.post(f"/api/v1/channels/{slug}/stream-key", headers=auth), 201)
    return str(issued["stream_key"])


def _live_on_channel(client: httpx.Client, slug: str) -> list[str]:
    listed = _ok(client.get("/api/v1/streams", params={"channel": slug, "state": "live", "limit": 100}), 200)
    return [str(s["stream_id"]) for s in listed["items"]]


def end_leftover_streams(
    settings: Settings, client: httpx.Client, *, timeout_s: float = LEFTOVER_WAIT_S, poll_s: float = 0.5
) -> list[str]:
    """End the streams the demo channel still has live (see the module docstring); returns their ids.

    Waits until the read model shows none live, at most `timeout_s` (then logs and goes on: without
    the lifecycle agent nothing would end them).
    """
    slug = settings.ingest.demo_channel
    leftover = _live_on_channel(client, slug)
    if not leftover:
        return []
    auth = _login(settings, client)
    for stream_id in leftover:
        log.info("demo: ending stream %s, left live by an earlier run", stream_id)
        # 409: the read model saw it end meanwhile; the lifecycle agent refuses a late request itself
        _ok(client.post(f"/api/v1/streams/{stream_id}/end", headers=auth), 202, 409)
    deadline = time.monotonic() + timeout_s
    while still := _live_on_channel(client, slug):
        if time.monotonic() > deadline:
            log.warning("demo: streams %s still live after %.0fs; pushing anyway", still, timeout_s)
            break
        time.sleep(poll_s)
    return leftover


class DemoPolls:
    """Keeps one poll running on the demo channel's live stream, opened by its streamer via the API.

    :meth:`step` is called every few seconds: it finds the channel's live stream and, when no demo
    poll is running on it (none opened yet, the last one's time is up, or the stream changed), opens
    the next of :data:`POLLS`. Failures are logged and retried at the next step: the demo stream
    matters more than its poll.
    """

    def __init__(self, settings: Settings, client: httpx.Client, *, duration_s: int = POLL_S) -> None:
        self._settings = settings
        self._client = client
        self._duration_s = duration_s
        self._channel_id: str | None = None
        self._running: tuple[str, float] | None = None  # (stream id, monotonic time it closes)
        self._next = 0  # index into POLLS

    def step(self, now: float | None = None) -> str | None:
        """Open a poll if one is due; returns its id (None when nothing was opened)."""
        now = time.monotonic() if now is None else now
        try:
            stream_id = self._live_stream()
            if stream_id is None or (
                self._running and self._running[0] == stream_id and now < self._running[1]
            ):
                return None
            question, options = POLLS[self._next % len(POLLS)]
            body = {"question": question, "options": options, "duration_s": self._duration_s}
            headers = {**_login(self._settings, self._client), "Idempotency-Key": secrets.token_hex(16)}
            opened = _ok(
                self._client.post(f"/api/v1/streams/{stream_id}/polls", json=body, headers=headers), 202
            )
        except (httpx.HTTPError, RuntimeError) as e:
            log.warning("demo: no poll this time: %s", e)
            return None
        self._next += 1
        self._running = (stream_id, now + self._duration_s + 2)
        log.info("demo: opened poll %s on stream %s: %s", opened["poll_id"], stream_id, question)
        return str(opened["poll_id"])

    def _live_stream(self) -> str | None:
        if self._channel_id is None:
            channel = _ok(self._client.get(f"/api/v1/channels/{self._settings.ingest.demo_channel}"), 200)
            self._channel_id = str(channel["channel_id"])
        live = _ok(self._client.get("/api/v1/streams/live", params={"limit": 100}), 200)
        return next((str(s["stream_id"]) for s in live["items"] if s["channel_id"] == self._channel_id), None)


def run(settings: Settings) -> int:
    """Push the demo stream until SIGINT/SIGTERM; returns the exit status."""
    logs.configure(settings.log_level, settings.log_format)
    base = f"http://{settings.api.host}:{settings.api.port}"
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
        try:
            key = ensure_demo_key(settings, client)
            end_leftover_streams(settings, client)
        except (httpx.HTTPError, RuntimeError) as e:
            log.error("demo: the API at %s is needed to set up the demo channel: %s", base, e)
            return 1
        url = f"rtmp://{settings.ingest.host}:{settings.ingest.rtmp_port}/live/{key}"
        channel, public = settings.ingest.demo_channel, settings.api.public_url
        log.info("demo: pushing to channel %r; watch %s", channel, public)
        return _push_forever(url, DemoPolls(settings, client))


def _push_forever(url: str, polls: DemoPolls) -> int:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = 1.0
    while not stopping:
        started = time.monotonic()
        process = subprocess.Popen(demo_command(url), stdin=subprocess.DEVNULL)
        next_poll_check = time.monotonic() + 5
        while process.poll() is None:
            if stopping:
                process.terminate()
            elif time.monotonic() >= next_poll_check:
                polls.step()
                next_poll_check = time.monotonic() + 5
            time.sleep(0.2)
        if stopping:
            break
        backoff = 1.0 if time.monotonic() - started > 60 else min(MAX_BACKOFF_S, backoff * 2)
        log.warning("demo: ffmpeg exited with %s; again in %.0fs", process.returncode, backoff)
        time.sleep(backoff)
    return 0
