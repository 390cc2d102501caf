"""uvicorn's HTTP/1.1 protocol with a deadline for a request's head (slowloris).

uvicorn times out only idle keep-alive connections (after a response); a client that connects and
trickles its request line and headers a byte at a time holds a connection, and the file descriptor
behind it, for as long as it likes. :class:`HeadTimeoutProtocol` closes a connection whose request head
is not complete within ``head_timeout_s`` of connecting, or of the first byte of a later request on
the same connection, with ``408 Request Timeout``. The body is not timed: the body-size limit and the
app bound it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeadTimeoutProtocol", "set_head_timeout"]

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 26\r\nconnection: close\r\n\r\nrequest head took too long"
)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """See the module docstring. A class uvicorn can hand to worker processes (by name), so the deadline
    is a class attribute each process sets from its settings (:func:`set_head_timeout`)."""

    head_timeout_s: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()  # a later request on a kept-alive connection: its own deadline

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()


def set_head_timeout(head_timeout_s: float) -> None:
    """The deadline of every connection this process accepts from now on."""
    HeadTimeoutProtocol.head_timeout_s = head_timeout_s
