"""The mixed load of a chaos run, and its history: every operation with what the platform answered.

Four kinds of client run at once, as real users would:

* chatters, signed in, each on one of the two edges, send numbered messages one after the other and
  wait for each ``ack`` (stored in ``chat.sent``); a dropped connection (its edge was killed)
  reconnects to the other edge and goes on;
* viewers, anonymous, subscribed on both edges, send a heartbeat every second;
* voters (the chatters) vote through their edge in every poll the streamer opens (one poll at a
  time, a new one every `poll_every_s`);
* registrations through the API, each with its own ``Idempotency-Key``; an answer other than 201 is
  retried with the same key until it is 201 (a 503 while Kafka is unreachable is expected), so every
  registration must in the end be on the log exactly once; except a 503 "outcome unknown" (records
  were on their way to a broker that failed): then at most once.

The history is what a Jepsen-style checker needs: each acknowledged operation with its key and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

PASSWORD = "chaos-password-1"
ACK_TIMEOUT_S = 15.0


@dataclass(slots=True)
class Op:
    """One operation: what was asked, when, and how it ended (ok True/False; None = no answer)."""

    kind: str  # chat | vote | register | open_poll
    key: str  # chat nonce, "poll:voter", username
    started: float
    ended: float = 0.0
    ok: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)

    def begin(self, kind: str, key: str, **detail: Any) -> Op:
        op = Op(kind, key, time.monotonic(), detail=dict(detail))
        self.ops.append(op)
        return op

    def acked(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind and op.ok]

    def of(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind]


def finish(op: Op, ok: bool | None, **detail: Any) -> Op:
    op.ended, op.ok = time.monotonic(), ok
    op.detail.update(detail)
    return op


@dataclass
class User:
    user_id: str
    username: str
    token: str


class Api:
    """The few API calls of the load, over HTTP like any client."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=20, trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def post(
        self, path: str, body: Any, token: str | None = None, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(path, json=body, headers=headers)

    async def until_ok(self, path: str, body: Any, token: str | None = None, timeout_s: float = 120) -> Any:
        """POST with one Idempotency-Key until a 2xx (setup steps; faults may be going on)."""
        key, deadline = uuid.uuid4().hex, time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await self.post(path, body, token, key)
                if response.is_success:
                    return response.json()
                if response.status_code < 500 and response.status_code not in (409, 429):
                    raise AssertionError(f"POST {path} -> {response.status_code} {response.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"POST {path} did not succeed within {timeout_s:g}s")
            await asyncio.sleep(0.5)

    async def user(self) -> User:
        username = f"c{uuid.uuid4().hex[:12]}"
        registered = await self.until_ok(
            "/api/v1/auth/register", {"username": username, "password": PASSWORD}
        )
        return await self.login(registered["user_id"], username)

    async def login(self, user_id: str, username: str) -> User:
        tokens = await self.until_ok("/api/v1/auth/login", {"username": username, "password": PASSWORD})
        return User(user_id, username, tokens["access_token"])


class EdgeClient:
    """A websocket connection that reconnects to the next edge when its edge goes away (its reader
    notices: also a client that only listens)."""

    def __init__(self, ports: list[int], first: int, user: User | None = None) -> None:
        self.ports, self.index, self.user = ports, first, user
        self.ws: ClientConnection | None = None
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.seen: list[dict[str, Any]] = []
        self.reconnects = 0
        self.stream: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def port(self) -> int:
        return self.ports[self.index % len(self.ports)]

    async def connect(self, stream: str) -> None:
        """Connect (trying each edge in turn until one answers) and subscribe to `stream`."""
        self.stream = stream
        while not self._closing:
            try:
                headers = {"Authorization": f"Bearer {self.user.token}"} if self.user else {}
                self.ws = await connect(
                    f"ws://127.0.0.1:{self.port}/", open_timeout=5, additional_headers=headers
                )
                self._reader = asyncio.create_task(self._read(self.ws))
                await self.ws.send(json.dumps({"type": "subscribe", "stream": stream}))
                return
            except (OSError, TimeoutError, Exception):
                self.index += 1
                await asyncio.sleep(0.5)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                message = json.loads(frame)
                if (nonce := message.get("nonce")) and (waiter := self.waiters.pop(nonce, None)):
                    if not waiter.done():
                        waiter.set_result(message)
                if message.get("type") == "chat":
                    self.seen.append(message)
        for waiter in self.waiters.values():  # the connection is gone: nothing more will answer
            if not waiter.done():
                waiter.set_exception(ConnectionError("edge connection closed"))
        self.waiters.clear()
        if not self._closing and self.stream is not None:  # its edge died: on through the next one
            self.reconnects += 1
            self.index += 1
            await self.connect(self.stream)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a message with a nonce and wait for the frame answering it (ack or error)."""
        assert self.ws is not None and self.stream is not None
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[message["nonce"]] = waiter
        try:
            await self.ws.send(json.dumps(message))
            return await asyncio.wait_for(waiter, ACK_TIMEOUT_S)
        finally:
            self.waiters.pop(message["nonce"], None)

    async def send(self, message: dict[str, Any]) -> None:
        """Fire and forget (heartbeats); lost while the reader reconnects."""
        with contextlib.suppress(Exception):
            assert self.ws is not None
            await self.ws.send(json.dumps(message))

    async def close(self) -> None:
        self._closing = True
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


@dataclass
class Load:
    """Runs the four kinds of client until `stop` is set; everything lands in `history`."""

    api: Api
    edges: list[int]
    stream: str
    owner: User
    chatters: list[tuple[User, EdgeClient]]
    viewers: list[EdgeClient]
    history: History = field(default_factory=History)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    poll_every_s: float = 12.0
    polls: list[str] = field(default_factory=list)
    poll_opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        tasks = [
            *(self._chat(i, user, client) for i, (user, client) in enumerate(self.chatters)),
            *(self._heartbeats(client) for client in self.viewers),
            *(self._votes(user, client) for user, client in self.chatters),
            self._polls(),
            self._registrations(),
        ]
        await asyncio.gather(*tasks)

    async def _until_stopped(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()

    async def _chat(self, index: int, user: User, client: EdgeClient) -> None:
        sequence = 0
        while not self.stop.is_set():
            sequence += 1
            nonce = f"{user.username}-{sequence}"
            op = self.history.begin("chat", nonce, sender=user.user_id, sequence=sequence)
            text = f"message {sequence} from chatter {index} ({uuid.uuid4().hex[:6]})"
            try:
                answer = await client.request(
                    {"type": "chat", "stream": self.stream, "text": text, "nonce": nonce}
                )
                finish(op, answer.get("type") == "ack", answer=answer, message_id=answer.get("message_id"))
            except Exception as e:
                finish(op, None, error=repr(e))
            if await self._until_stopped(0.6):
                return

    async def _heartbeats(self, client: EdgeClient) -> None:
        while not await self._until_stopped(1.0):
            await client.send({"type": "heartbeat", "stream": self.stream})

    async def _polls(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            op = self.history.begin("open_poll", f"poll-{number}")
            try:
                opened = await self.api.until_ok(
                    f"/api/v1/streams/{self.stream}/polls",
                    {"question": f"Who takes map {number}?", "options": ["blue", "red", "draw"]},
                    self.owner.token,
                )
                finish(op, True, poll_id=opened["poll_id"])
                self.polls.append(opened["poll_id"])
                self.poll_opened.set()
            except AssertionError as e:
                finish(op, False, error=str(e))
            if await self._until_stopped(self.poll_every_s):
                return

    async def _votes(self, user: User, client: EdgeClient) -> None:
        voted: set[str] = set()
        while not self.stop.is_set():
            pending = [poll for poll in self.polls if poll not in voted]
            if not pending:
                if await self._until_stopped(0.5):
                    return
                continue
            poll = pending[-1]
            voted.add(poll)
            option = int(uuid.UUID(user.user_id).int % 3)
            op = self.history.begin(
                "vote", f"{poll}:{user.user_id}", poll=poll, user=user.user_id, option=option
            )
            message = {
                "type": "vote",
                "stream": self.stream,
                "poll": poll,
                "option": option,
                "nonce": uuid.uuid4().hex,
            }
            try:
                answer = await client.request(message)
                finish(op, answer.get("type") == "ack", answer=answer)
            except Exception as e:
                finish(op, None, error=repr(e))

    async def _registrations(self) -> None:
        """A new account every 0.5 s; failures retried with the same key (see the module docstring)."""
        owed: list[tuple[str, str]] = []
        while not self.stop.is_set():
            owed.append((f"r{uuid.uuid4().hex[:12]}", uuid.uuid4().hex))
            owed = [pair for pair in owed if not await self._register(*pair)]
            if await self._until_stopped(0.5):
                break
        deadline = time.monotonic() + 120
        while owed and time.monotonic() < deadline:  # after the faults: the retries do the work once
            owed = [pair for pair in owed if not await self._register(*pair)]
            await asyncio.sleep(0.5)

    async def _register(self, username: str, key: str) -> bool:
        """One attempt; True when settled: 201, or 503 "outcome unknown" (the API says the account
        may exist; its key keeps that answer, so retrying it is pointless: at most once is owed)."""
        op = self.history.begin("register", username, idempotency_key=key)
        try:
            response = await self.api.post(
                "/api/v1/auth/register", {"username": username, "password": PASSWORD}, key=key
            )
        except httpx.HTTPError as e:
            finish(op, None, error=repr(e))
            return False
        kind = response.json().get("type", "") if response.status_code >= 400 else ""
        unknown = response.status_code == 503 and kind.endswith("/outcome-unknown")
        finish(
            op,
            None if unknown else response.status_code == 201,
            status=response.status_code,
            retry_after=response.headers.get("retry-after"),
            outcome_unknown=unknown,
        )
        return response.status_code == 201 or unknown


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s:g}s")
        await asyncio.sleep(0.2)
