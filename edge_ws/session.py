"""One client connection: its identity, subscriptions, rate limit, and the commands it sends.

Server messages are written synchronously as complete frames (``write_frame``), never awaited, so a
slow client can only fill its own buffer; past ``edge.send_buffer_bytes`` it is dropped (1013).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from edge_ws.auth import Identity, InvalidToken, TokenCheck
from edge_ws.commands import EdgeWrites, HeartbeatBatch
from edge_ws.fanout import FanoutHub
from edge_ws.limits import TokenBucket
from edge_ws.metrics import Metrics
from edge_ws.pause import SendingPause
from edge_ws.protocol import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Authenticate,
    Command,
    Heartbeat,
    Moderate,
    Ping,
    ProtocolError,
    SendChat,
    Subscribe,
    Unsubscribe,
    Vote,
    WatchHeld,
    ack,
    encode,
    error,
    notice,
    parse,
    text_frame,
)
from infra.kafka import KafkaError, Position, PublishInDoubt

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 20  # streams per connection: a page shows one, a multiview a few
DROP_CLOSE_TIMEOUT_S = 1.0  # how long a dropped client gets to answer the close frame
FLOOD_CLOSE_AFTER = 100  # rate-limited frames in a row before the node gives up on the client (1008)


class SessionContext:
    """What every session of a node shares (built once in the composition root)."""

    def __init__(
        self,
        *,
        hub: FanoutHub,
        writes: EdgeWrites,
        heartbeats: HeartbeatBatch,
        tokens: TokenCheck,
        metrics: Metrics,
        max_text: int,
        send_buffer_bytes: int,
        rate: tuple[float, int],
        clock: Callable[[], float] = time.monotonic,
        pause: SendingPause | None = None,
    ) -> None:
        self.hub = hub
        self.writes = writes
        self.heartbeats = heartbeats
        self.tokens = tokens
        self.metrics = metrics
        self.max_text = max_text
        self.send_buffer_bytes = send_buffer_bytes
        self.rate = rate
        self.clock = clock
        self.pause = pause
        self.closing: set[asyncio.Task[None]] = set()


class Session:
    """A connected client (the hub's ``Peer``)."""

    def __init__(self, ws: ServerConnection, context: SessionContext, identity: Identity | None) -> None:
        self._ws = ws
        self._context = context
        self._transport = ws.transport
        self._protocol = ws.protocol
        self._limit = context.send_buffer_bytes
        self._bucket = TokenBucket(*context.rate, now=context.clock())
        self._refused_in_a_row = 0
        self.session_id = uuid.uuid4().hex
        self._referrers: dict[str, str] = {}  # stream -> where the viewer came from (its subscribe)
        self.identity = identity
        self.user_id: str | None = None
        self.streams: set[str] = set()
        self.dropped = False
        if identity is not None:
            context.hub.identify(self, identity.user_id)

    @property
    def ws(self) -> ServerConnection:
        return self._ws

    # --- Peer ------------------------------------------------------------------------------------

    def fits(self) -> bool:
        if self._protocol.state is not State.OPEN or self.dropped:
            return False
        if self._transport.get_write_buffer_size() > self._limit:
            self.drop(CLOSE_TRY_AGAIN, "slow consumer")
            return False
        return True

    def write_frame(self, frame: bytes) -> None:
        self._transport.write(frame)

    def send(self, payload: bytes) -> None:
        if self.fits():
            self.write_frame(text_frame(payload))

    def drop(self, code: int, reason: str) -> None:
        """Stop sending now; close in the background (the client is not waited for)."""
        if self.dropped:
            return
        self.dropped = True
        self.leave()
        self._context.metrics.drops += code == CLOSE_TRY_AGAIN
        task = asyncio.get_running_loop().create_task(_close_soon(self._ws, code, reason))
        self._context.closing.add(task)
        task.add_done_callback(self._context.closing.discard)

    def leave(self) -> None:
        self._context.metrics.subscriptions -= len(self.streams)
        self._context.hub.leave(self, self.streams)
        self.streams = set()

    # --- commands ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read frames until the client goes; every frame gets an answer or a delivery, never a close."""
        async for frame in self._ws:
            if self.dropped:
                return
            await self.handle(frame)

    async def handle(self, frame: str | bytes) -> None:
        if not self._admit():
            return
        try:
            command = parse(frame, max_text=self._context.max_text)
            started = time.perf_counter()
            await self._dispatch(command)
            elapsed = time.perf_counter() - started
            self._context.metrics.command_duration.labels(type(command).__name__).observe(elapsed)
        except ProtocolError as e:
            self._context.metrics.client_errors += 1
            self.send(error(e.code, e.message, e.nonce))

    def _admit(self) -> bool:
        if self._bucket.take(self._context.clock()):
            self._refused_in_a_row = 0
            return True
        self._context.metrics.rate_limited += 1
        self._refused_in_a_row += 1
        if self._refused_in_a_row >= FLOOD_CLOSE_AFTER:
            self.drop(CLOSE_POLICY, "message rate")
        else:
            self.send(error("rate_limited", "too many messages; slow down"))
        return False

    async def _dispatch(self, command: Command) -> None:
        match command:
            case Subscribe():
                self._subscribe(command)
            case Unsubscribe():
                self._unsubscribe(command.stream)
            case Heartbeat():
                user = self.identity.user_id if self.identity is not None else None
                referrer = self._referrers.get(command.stream)
                self._context.heartbeats.record(command.stream, self.session_id, user, referrer)
            case Authenticate():
                self._authenticate(command.token)
            case SendChat() | Vote() | Moderate():
                await self._write(command)
            case Ping():
                self.send(encode({"type": "pong", "nonce": command.nonce, "t": time.time()}))
            case WatchHeld():
                self._watch_held(command)

    def _subscribe(self, command: Subscribe) -> None:
        if command.stream not in self.streams and len(self.streams) >= MAX_SUBSCRIPTIONS:
            raise ProtocolError(
                "too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} streams per connection"
            )
        if command.stream not in self.streams:
            self._context.metrics.subscriptions += 1
        self.streams.add(command.stream)
        if command.referrer is not None:
            self._referrers[command.stream] = command.referrer
        self._context.hub.subscribe(self, command.stream, command.since, results=not command.spoilers_hidden)

    def _unsubscribe(self, stream: str) -> None:
        self._referrers.pop(stream, None)
        if stream in self.streams:
            self.streams.discard(stream)
            self._context.metrics.subscriptions -= 1
        self._context.hub.unsubscribe(self, stream)

    def _authenticate(self, token: str) -> None:
        try:
            self.identity = self._context.tokens.verify(token)
        except InvalidToken:
            raise ProtocolError("unauthorized", "invalid or expired token") from None
        self._context.hub.identify(self, self.identity.user_id)
        self.send(notice("authenticated", user=self.identity.user_id, role=self.identity.role))

    def _watch_held(self, command: WatchHeld) -> None:
        """Join the stream's moderators with a pass the API issued to this very user for this stream."""
        who = self._writer(command.nonce)
        try:
            granted = self._context.tokens.verify_pass(command.moderator_pass)
        except InvalidToken:
            raise ProtocolError("unauthorized", "invalid or expired moderator pass", command.nonce) from None
        if granted.user_id != who.user_id or granted.stream_id != command.stream:
            raise ProtocolError("forbidden", "this pass is for another user or stream", command.nonce)
        self._context.hub.watch_held(self, command.stream)
        if command.nonce:
            self.send(ack(command.nonce, stream=command.stream))
        self.send(notice("moderating", stream=command.stream))

    def _writer(self, nonce: str) -> Identity:
        if self.identity is None:
            raise ProtocolError("unauthorized", "sign in to chat, vote or moderate", nonce)
        if self.identity.expired():
            raise ProtocolError("unauthorized", "token expired; send a fresh one with auth", nonce)
        return self.identity

    async def _write(self, command: SendChat | Vote | Moderate) -> None:
        who = self._writer(command.nonce)
        if self._context.pause is not None and self._context.pause.paused:
            raise ProtocolError(
                "paused",
                "sending is paused (this node cannot reach Kafka); not stored: send it again after "
                "notice resumed",
                command.nonce,
            )
        writes = self._context.writes
        try:
            if isinstance(command, SendChat):
                message_id, position = await writes.chat(who, command)
                self.send(
                    ack(command.nonce, stream=command.stream, message_id=message_id, pos=_pos(position))
                )
                return
            if isinstance(command, Vote):
                event_id, position = await writes.vote(who, command)
            else:
                event_id, position = await writes.moderate(who, command)
        except KafkaError as e:
            raise ProtocolError("unavailable", _not_stored(e), command.nonce) from e
        if command.nonce:
            self.send(ack(command.nonce, stream=command.stream, event_id=event_id, pos=_pos(position)))


def _not_stored(error: KafkaError) -> str:
    if isinstance(error, PublishInDoubt):
        return "Kafka stalled while storing it: it may still be stored; check before sending it again"
    if error.retriable:
        return "not stored: Kafka did not answer in time; send it again after notice resumed"
    return f"not stored: Kafka refused it ({error})"


async def _close_soon(ws: ServerConnection, code: int, reason: str) -> None:
    """Close with ``code``; a client that does not read cannot answer the handshake, so cut it short."""
    try:
        await asyncio.wait_for(ws.close(code, reason), DROP_CLOSE_TIMEOUT_S)
    except Exception:  # TimeoutError, or the connection broke meanwhile
        ws.transport.abort()


def _pos(position: Position) -> str:
    """A publish position as the wire's ``partition:offset`` (the topic is implied by the command)."""
    return f"{position.partition}:{position.offset}"
