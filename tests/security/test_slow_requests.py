"""Slow requests (slowloris): a client trickling its request head is cut off with 408 by the protocol
``esports api`` serves with (:mod:`web.http_protocol`), on a real uvicorn server over TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.ports import free_port
from web.http_protocol import HeadTimeoutProtocol, set_head_timeout

HEAD_TIMEOUT_S = 0.5


async def _hello(_: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    previous = HeadTimeoutProtocol.head_timeout_s
    set_head_timeout(HEAD_TIMEOUT_S)
    port = free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/", _hello)]),
        host="127.0.0.1",
        port=port,
        http=HeadTimeoutProtocol,
        lifespan="off",
        log_config=None,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        set_head_timeout(previous)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 5)  # until the server closes


async def test_a_trickled_head_gets_408_and_the_connection_closed(server_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    started = time.monotonic()
    for chunk in (b"GET / HT", b"TP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1\r\n"):  # never the blank line
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(HEAD_TIMEOUT_S / 4)
    answer = await _read_all(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < HEAD_TIMEOUT_S * 4
    writer.close()


async def test_a_silent_connection_is_closed(server_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    assert (await _read_all(reader)).startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_prompt_requests_on_a_kept_alive_connection_are_served(server_port: int) -> None:
    """The deadline restarts with each request: waiting longer than it between requests is fine (the
    keep-alive timeout governs idle connections)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        await asyncio.sleep(HEAD_TIMEOUT_S * 2)
    writer.close()


def test_the_api_server_serves_with_the_protocol_and_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.settings import Settings
    from web import server

    given: dict[str, object] = {}
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **options: given.update(options))
    previous = HeadTimeoutProtocol.head_timeout_s
    settings = Settings()
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"port": free_port(), "head_timeout_s": 3.5})}
    )
    try:
        assert server.run(settings) == 0
        assert given["http"] is HeadTimeoutProtocol
        assert HeadTimeoutProtocol.head_timeout_s == 3.5
    finally:
        set_head_timeout(previous)
