"""The two nginx processes of an ingest node: RTMP ingest + HLS origin, and the HLS cache tier.

Each runs in the foreground as a child of the node (``-p PREFIX -c CONF -e LOG``, ``daemon off``), with
its config, temp folders, cache and pid under ``<run_dir>/nginx/<name>/`` and its logs under
``<run_dir>/logs/``; the system nginx is never touched. A node on another RTMP port than the default
(a second node on the same machine, moved by its ESPORTS_INGEST__* ports) keeps them under
``<run_dir>/nginx/ingest-<rtmp_port>/<name>/`` and ``<run_dir>/logs/ingest-<rtmp_port>/`` instead, so
two nodes never share a config, pid file, temp folder, cache or log.

The ingest nginx also serves nginx-rtmp's control module on a unix socket (never on a port): the
node drops a publisher through it (:meth:`Nginx.drop_publisher`). The socket lives in a private
folder (mode 0700) under the system's temp folder, because a socket path must stay under about
100 bytes, which a run folder may not.

With Low-Latency HLS (``ingest.low_latency``) both configs get a few more locations
(``infra/local/nginx/*-ll.locations.tmpl``, at the template's ``@LOW_LATENCY_LOCATIONS@`` line): the
origin forwards playlists, and parts it does not have yet, to the LL origin
(:mod:`ingest_workers.ll_origin`); the cache tier keys playlists by their query and holds its cache
lock longer than the origin holds a blocking request, so the viewers waiting for the same next part
make one request to the origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.settings import IngestSettings, Settings
from infra.stack.processes import port_holder, port_in_use
from infra.stack.service import LOCAL_DIR
from ingest_workers.errors import NginxFailed

__all__ = ["Nginx", "cdn", "origin", "render"]

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "cache")
DEFAULT_RTMP_PORT = IngestSettings.model_fields["rtmp_port"].default
CONTROL_TIMEOUT_S = 5.0
LL_HOLD_MARGIN_S = 5
PLACEHOLDER = re.compile(r"@[A-Z_]+@")  # nginx's named locations (@ll_origin) are not placeholders
RTMP_APP = "live"  # the one RTMP application of ingest.conf.tmpl (OBS: rtmp://HOST/live)


# Where a template takes the Low-Latency HLS locations (<name>-ll.locations.tmpl): a line of its own,
# removed whole when the mode is off, so the standard configs are what they were.
LOW_LATENCY_LINE = "@LOW_LATENCY_LOCATIONS@\n"


def render(template: str, target: Path, values: dict[str, object], *, low_latency: bool = False) -> None:
    """infra/local/nginx/<template> with @NAME@ placeholders filled (nginx itself uses $ and {}), and
    with `low_latency` the template's Low-Latency HLS locations (see :data:`LOW_LATENCY_LINE`)."""
    text = (LOCAL_DIR / "nginx" / template).read_text()
    if LOW_LATENCY_LINE in text:
        locations = LOCAL_DIR / "nginx" / template.replace(".conf.tmpl", "-ll.locations.tmpl")
        text = text.replace(LOW_LATENCY_LINE, locations.read_text() if low_latency else "", 1)
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    if PLACEHOLDER.search("".join(line.split("#")[0] for line in text.splitlines())):  # not @named
        raise NginxFailed(f"{template}: a placeholder was left unfilled")
    target.write_text(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    port: int
    env: str  # the setting that moves it


class Nginx:
    """One foreground nginx with a rendered config; ready when its /health answers."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        template: str,
        listeners: list[Listener],
        health_port: int,
        *,
        control: bool = False,
    ):
        self.settings = settings
        self.control = control  # serves nginx-rtmp's control module on control_socket
        self.name = name
        self.template = template
        self.listeners = listeners
        self.health_port = health_port
        self.prefix = _node_dir(settings, settings.stack.run_dir / "nginx") / name
        self.logs = _node_dir(settings, settings.stack.run_dir / "logs")
        self._process: subprocess.Popen[bytes] | None = None
        self._control_dir: Path | None = None

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def control_socket(self) -> Path | None:
        """The unix socket of the rtmp_control location (while running, if ``control``)."""
        return self._control_dir / "control.sock" if self._control_dir else None

    def values(self) -> dict[str, object]:
        ingest = self.settings.ingest
        return {
            "PREFIX": self.prefix,
            "LOGS": self.logs,
            "HOST": ingest.host,
            "RTMP_PORT": ingest.rtmp_port,
            "ORIGIN_PORT": ingest.origin_port,
            "CDN_PORT": ingest.cdn_port,
            "HOOK_PORT": ingest.hook_port,
            "HLS_DIR": ingest.hls_dir,
            "RTMP_MODULE": ingest.rtmp_module,
            "CACHE_SIZE": "1g",
            "PLAYLIST_MAX_AGE": max(1, int(ingest.segment_s // 2)),
            "USER": _user_directive(),
            "CONTROL_SOCKET": self.control_socket or "",
            "LL_ORIGIN_PORT": ingest.ll_origin_port,
            # longer than the LL origin holds a blocking request (3 target durations) or waits for a part
            "LL_HOLD_S": int(3 * max(ingest.segment_s, 1.0) + 1) + LL_HOLD_MARGIN_S,
        }

    def prepare(self) -> None:
        if shutil.which("nginx") is None:
            raise NginxFailed("nginx not found: run infra/local/install-system.sh (nginx libnginx-mod-rtmp)")
        for sub in TEMP_DIRS:
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings.ingest.hls_dir.mkdir(parents=True, exist_ok=True)
        if self.control and self._control_dir is None:
            self._control_dir = Path(tempfile.mkdtemp(prefix="esports-rtmp-"))  # mode 0700
        render(self.template, self.conf, self.values(), low_latency=self.settings.ingest.low_latency)
        for listener in self.listeners:
            if port_in_use(listener.port, self.settings.ingest.host):
                raise NginxFailed(
                    f"{self.name}: port {listener.port} is taken{port_holder(listener.port)}; "
                    f"set {listener.env} to move it"
                )

    async def start(self) -> None:
        self.prepare()
        argv = [
            "nginx",
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-e",
            str(self.logs / f"nginx-{self.name}-error.log"),
        ]
        self._process = await asyncio.to_thread(self._launch, argv)
        await self._wait_ready()
        log.info("nginx %s ready (pid %s, %s)", self.name, self._process.pid, self.conf)

    def _launch(self, argv: list[str]) -> subprocess.Popen[bytes]:
        check = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            raise NginxFailed(f"{self.name}: nginx rejected {self.conf}: {check.stderr.strip()[-500:]}")
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def _wait_ready(self) -> None:
        url = f"http://{self.settings.ingest.host}:{self.health_port}/health"
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise NginxFailed(
                    f"{self.name}: nginx exited with {self._process.returncode}; see {self.logs}"
                )
            if await asyncio.to_thread(_answers, url):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise NginxFailed(f"{self.name}: {url} did not answer within {READY_TIMEOUT_S:.0f}s")
            await asyncio.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def drop_publisher(self, stream_id: str) -> bool:
        """Disconnect whoever publishes ``stream_id`` (its name after the key check's rename) through
        nginx-rtmp's control module; True if a publisher was dropped."""
        socket_path = self.control_socket
        if socket_path is None:
            raise NginxFailed(f"{self.name}: nginx serves no rtmp_control socket")
        transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
        async with httpx.AsyncClient(
            transport=transport, timeout=CONTROL_TIMEOUT_S, trust_env=False
        ) as client:
            try:
                response = await client.get(
                    "http://control/control/drop/publisher", params={"app": RTMP_APP, "name": stream_id}
                )
            except httpx.HTTPError as e:
                raise NginxFailed(f"{self.name}: rtmp_control unreachable ({type(e).__name__})") from e
        if response.status_code != 200:
            return False
        dropped = response.text.strip()
        return dropped.isdigit() and int(dropped) > 0

    async def stop(self) -> None:
        """SIGQUIT (graceful: finish open requests), SIGKILL the group if it lingers."""
        try:
            await self._stop()
        finally:
            if self._control_dir is not None:
                shutil.rmtree(self._control_dir, ignore_errors=True)
                self._control_dir = None

    async def _stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _node_dir(settings: Settings, root: Path) -> Path:
    """``root`` for the node on the default RTMP port (the paths one node has always used), else
    its own folder in it, named by its RTMP port (two nodes on one machine cannot share that)."""
    port = settings.ingest.rtmp_port
    return root if port == DEFAULT_RTMP_PORT else root / f"ingest-{port}"


def _user_directive() -> str:
    """Workers run as the node's user, like every local service: they read the HLS folder it writes.

    Started by root, nginx would otherwise switch its workers to `nobody`, who cannot read a private
    run folder; started by anyone else it cannot switch at all and the directive is only a warning.
    """
    if os.geteuid() != 0:
        return "# workers run as the starting user"
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};"


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def origin(settings: Settings) -> Nginx:
    """RTMP ingest and the HLS origin in one nginx."""
    ingest = settings.ingest
    return Nginx(
        settings,
        "ingest",
        "ingest.conf.tmpl",
        [
            Listener(port=ingest.rtmp_port, env="ESPORTS_INGEST__RTMP_PORT"),
            Listener(port=ingest.origin_port, env="ESPORTS_INGEST__ORIGIN_PORT"),
        ],
        ingest.origin_port,
        control=True,
    )


def cdn(settings: Settings) -> Nginx:
    """The cache tier in front of the origin."""
    ingest = settings.ingest
    return Nginx(
        settings,
        "cdn",
        "cdn.conf.tmpl",
        [Listener(port=ingest.cdn_port, env="ESPORTS_INGEST__CDN_PORT")],
        ingest.cdn_port,
    )
