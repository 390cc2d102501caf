"""SRT ingest: a listener on ``srt_port`` whose callers put their stream key in ``streamid``.

FFmpeg's SRT listener accepts any caller and cannot tell us the ``streamid``, so the listener is
libsrt itself (through ctypes; the library FFmpeg links). The key is checked during the SRT handshake
(a listen callback asks the same authorizer as the RTMP hook and rejects unknown keys before any
data flows), then the caller's MPEG-TS is relayed over loopback UDP to the stream's session, whose
FFmpeg reads ``udp://127.0.0.1:PORT``: the key never reaches a command line.

OBS: server ``srt://HOST:9000?streamid=KEY&latency=200000`` (or streamid ``#!::r=KEY``).

:meth:`SrtListener.drop` closes a caller's socket when the log tells the node to drop its publisher
(its stream ended, its key was rotated); the relay sees the socket closed and the session goes on
as if the caller had left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future

from events.ingest import IngestProtocol
from ingest_workers.control import Authorizer, Grant, IngestControl
from ingest_workers.errors import IngestError
from ingest_workers.session import Source

__all__ = ["SrtListener", "udp_source"]

log = logging.getLogger(__name__)
SRTO_STREAMID = 46
SRT_ERROR = -1
PAYLOAD = 1456  # largest SRT live payload
AUTHORIZE_TIMEOUT_S = 3.0
LISTEN_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)


class SrtUnavailable(IngestError):
    """libsrt could not be loaded or the port could not be bound."""


def _library() -> ctypes.CDLL:
    for name in (
        ctypes.util.find_library("srt"),
        "libsrt-gnutls.so.1.5",
        "libsrt-openssl.so.1.5",
        "libsrt.so.1.5",
    ):
        if name:
            with contextlib.suppress(OSError):
                return ctypes.CDLL(name)
    raise SrtUnavailable("libsrt not found (Debian: libsrt1.5-gnutls, installed with ffmpeg)")


def _key_of(streamid: str) -> str:
    """The key from a plain streamid or from the access-control syntax ``#!::r=KEY,m=publish``."""
    if streamid.startswith("#!::"):
        fields = dict(item.split("=", 1) for item in streamid[4:].split(",") if "=" in item)
        return fields.get("r", "")
    return streamid


def udp_source(port: int) -> Source:
    """What a session's FFmpeg reads: the relayed MPEG-TS; 5 s without data ends the run."""
    url = f"udp://127.0.0.1:{port}?timeout=5000000&fifo_size=1000000&overrun_nonfatal=1"
    args = (
        "-protocol_whitelist",
        "udp",
        "-analyzeduration",
        "1000000",
        "-probesize",
        "1000000",
        "-f",
        "mpegts",
    )
    return Source(protocol=IngestProtocol.SRT, input_args=(*args, "-i", url), probe_args=(*args, url))


class SrtListener:
    """Accepts SRT publishers with a valid key and relays each to its stream's session."""

    def __init__(self, host: str, port: int, control: IngestControl, authorizer: Authorizer) -> None:
        self.host, self.port = host, port
        self.control = control
        self.authorizer = authorizer
        self._srt = _library()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket = SRT_ERROR
        self._granted: dict[int, Grant] = {}  # accepted socket -> its grant (set in the handshake)
        self._callers: dict[str, int] = {}  # stream id -> the socket relaying it (under _lock)
        self._lock = threading.Lock()
        self._callback = LISTEN_CALLBACK(self._on_handshake)  # kept alive: libsrt holds the pointer
        self._threads: list[threading.Thread] = []
        self._ports: dict[str, int] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        srt = self._srt
        srt.srt_startup()
        self._socket = srt.srt_create_socket()
        address = _sockaddr(self.host, self.port)
        if srt.srt_bind(self._socket, address, ctypes.sizeof(address)) == SRT_ERROR:
            raise SrtUnavailable(f"SRT port {self.port} is taken; set ESPORTS_INGEST__SRT_PORT to move it")
        srt.srt_listen_callback(self._socket, self._callback, None)
        srt.srt_listen(self._socket, 16)
        self._spawn(self._accept_loop, "srt-accept")
        log.info("SRT ingest on srt://%s:%s (streamid = stream key)", self.host, self.port)

    def stop(self) -> None:
        if self._socket == SRT_ERROR:
            return
        self._srt.srt_close(self._socket)
        self._socket = SRT_ERROR
        with self._lock:
            callers = list(self._callers.values())
            self._callers.clear()
        for caller in callers:  # their relays see the socket closed and end
            self._srt.srt_close(caller)
        for thread in self._threads:
            thread.join(timeout=5)
        # Balances start's srt_startup (libsrt counts them): the last cleanup stops libsrt's own threads
        # now, rather than in its static destructors at exit, which freed memory twice when a process
        # had started and stopped two listeners.
        self._srt.srt_cleanup()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _on_handshake(
        self, _opaque: int, accepted: int, _version: int, _peer: int, streamid: bytes | None
    ) -> int:
        """libsrt's thread, during the handshake: 0 admits the caller, -1 rejects it."""
        key = _key_of((streamid or b"").decode(errors="replace"))
        if not key or self._loop is None:
            return -1
        future: Future[Grant | None] = asyncio.run_coroutine_threadsafe(
            self.authorizer.authorize(key), self._loop
        )
        try:
            grant = future.result(AUTHORIZE_TIMEOUT_S)
        except Exception:
            log.error("SRT: stream-key check unavailable; caller rejected")
            return -1
        if grant is None:
            log.info("SRT: caller rejected: unknown or revoked stream key")
            return -1
        if self.control.ended(grant.stream_id):
            log.info("SRT: caller rejected: stream %s has ended", grant.stream_id)
            return -1
        self._granted[accepted] = grant
        return 0

    def drop(self, stream_id: str) -> bool:
        """Close the socket of the caller publishing ``stream_id``; False if there is none."""
        with self._lock:
            caller = self._callers.pop(stream_id, None)
        if caller is None:
            return False
        self._srt.srt_close(caller)  # the relay's srt_recvmsg returns an error: the caller has left
        return True

    async def drop_publisher(self, stream_id: str) -> bool:
        """:meth:`drop` as the control's disconnector for SRT."""
        return self.drop(stream_id)

    def _accept_loop(self) -> None:
        while self._socket != SRT_ERROR:
            caller = self._srt.srt_accept(self._socket, None, None)
            if caller == SRT_ERROR:
                return
            grant = self._granted.pop(caller, None)
            if grant is None:
                self._srt.srt_close(caller)
                continue
            self._spawn(self._relay, f"srt-{grant.stream_id}", caller, grant)

    def _relay(self, caller: int, grant: Grant) -> None:
        assert self._loop is not None
        stream_id = grant.stream_id
        relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = self._ports.setdefault(stream_id, _free_udp_port())  # a reconnect finds its session
        with self._lock:
            self._callers[stream_id] = caller
        asyncio.run_coroutine_threadsafe(self._attach(grant, port), self._loop).result()
        buffer = ctypes.create_string_buffer(PAYLOAD * 2)
        log.info("SRT publisher of stream %s connected", stream_id)
        try:
            while (size := self._srt.srt_recvmsg(caller, buffer, len(buffer))) > 0:
                relay.sendto(buffer.raw[:size], ("127.0.0.1", port))
        finally:
            relay.close()
            with self._lock:
                mine = self._callers.get(stream_id) == caller
                if mine:
                    del self._callers[stream_id]
            if mine:  # (a dropped caller's socket is closed already)
                self._srt.srt_close(caller)
            self._loop.call_soon_threadsafe(self.control.detach, stream_id)
            log.info("SRT publisher of stream %s left", stream_id)

    async def _attach(self, grant: Grant, port: int) -> None:
        self.control.attach(grant.stream_id, lambda: udp_source(port), grant)


def _sockaddr(host: str, port: int) -> ctypes.Array[ctypes.c_char]:
    raw = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(host) + bytes(8)
    return ctypes.create_string_buffer(raw, len(raw))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
