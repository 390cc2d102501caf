"""Polls end to end, nothing simulated: the API, the processors worker, the projector, an edge node.

A streamer owns a channel and a stream; a moderator is appointed; three viewers vote; a troll tries.

1. The API refuses what it must: 401 without a token, 403 for a plain viewer, 404 for an unknown stream
   or poll, 422 for a bad body (one option, six, a duration outside 10 s..1 h, twice the same option).
2. The owner opens a poll over the API: its all-zero tally reaches a websocket subscriber as a `poll`
   frame (the agent publishes it when it reads the open), and ``GET /polls/{id}`` (with that frame's
   position as ``X-Min-Position``) has the question and options.
3. Viewers vote over the edge (one changes their vote); the troll's `/poll` and `/endpoll` typed in chat
   open and close nothing (acked: the edge cannot check rights; the agent ignores them), a malformed
   `/poll` gets an `error` frame, and a vote after the troll's `/endpoll` still counts.
4. The owner types `/endpoll`: the final tally reaches the subscriber, exact; PostgreSQL and
   ``GET /polls/{id}`` say closed, by the owner, with the same counts; a second close is a 409; the
   stream's list has the poll and not the troll's.
5. The moderator opens one with `/poll ... | 90s` in chat and closes it with `/endpoll`.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from events.codec import EventCodec
from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, User, eventually, open_api_stack
from tests.integration.test_edge_support import Client, edge_settings, running_node

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0
OPTIONS = ["NAVI", "G2", "Vitality"]


def is_poll(poll_id: str, *, final: bool | None = None) -> Any:
    def matches(m: dict[str, Any]) -> bool:
        return m["type"] == "poll" and m["poll"] == poll_id and (final is None or m["final"] is final)

    return matches


def tally_position(frame: dict[str, Any]) -> str:
    """A `poll` frame's ``pos`` as an ``X-Min-Position`` (its topic is polls.tallies)."""
    return f"polls.tallies:{frame['pos']}"


async def ack(client: Client, nonce: str) -> dict[str, Any]:
    answer = await client.wait_for(lambda m: m.get("nonce") == nonce, timeout_s=TIMEOUT_S)
    assert answer["type"] == "ack", answer
    return answer


def worker_metric(stack: ApiStack, line_start: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.worker.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0  # Prometheus floats: 12.0, 1.2e+06


async def channel_and_stream(stack: ApiStack) -> tuple[User, User, list[User], User, str, str]:
    owner, mod, troll, *voters = await asyncio.gather(*(stack.register() for _ in range(6)))
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"c-{uuid.uuid4().hex[:12]}", "display_name": "C"}
    )
    await stack.relogin(owner)  # the channel made it a streamer
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Grand final"}
    )
    appointed = await stack.command(
        "PUT", f"/api/v1/channels/{channel['channel_id']}/moderators/{mod.user_id}", owner
    )
    await stack.query(f"/api/v1/streams/{created['stream_id']}", after=[created["position"]])
    mod.positions.append(appointed["position"])
    return owner, mod, voters, troll, channel["channel_id"], created["stream_id"]


async def test_polls_from_the_api_and_chat_through_the_agent_to_subscribers_and_postgres(
    settings: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    async with open_api_stack(settings, tmp_path) as stack:
        owner, mod, voters, troll, _, stream = await channel_and_stream(stack)
        edge = edge_settings(stack.settings).model_copy(update={"auth": stack.settings.auth})
        async with running_node(edge, codec) as node:
            watcher = await Client.open(node.port)
            await watcher.subscribe(stream)
            clients = {
                u.user_id: await Client.open(node.port, additional_headers=u.auth)
                for u in (owner, mod, troll, *voters)
            }
            try:
                await _api_refusals(stack, stream, owner, troll)
                poll_id = await _open_vote_and_end(stack, stream, owner, voters, troll, clients, watcher)
                await _moderator_in_chat(stack, stream, mod, clients[mod.user_id], watcher)
                assert worker_metric(stack, 'esports_poll_ignored_total{reason="not_allowed"}') >= 2
                refusals = [line for line in stack.worker.log_text().splitlines() if "refused" in line]
                assert any(f"actor={troll.user_id}" in line for line in refusals), refusals
                assert troll.access_token not in stack.worker.log_text()  # ids, never tokens
                await stack.command(
                    "POST", f"/api/v1/streams/{stream}/polls/{poll_id}/close", owner, expect=409
                )
            except BaseException:
                print(stack.worker.log_text()[-4000:])
                raise
            finally:
                await asyncio.gather(watcher.close(), *(c.close() for c in clients.values()))


async def _api_refusals(stack: ApiStack, stream: str, owner: User, viewer: User) -> None:
    body = {"question": "Who takes map 3?", "options": OPTIONS}
    await stack.command("POST", f"/api/v1/streams/{stream}/polls", None, body, expect=401)
    forbidden = await stack.command("POST", f"/api/v1/streams/{stream}/polls", viewer, body, expect=403)
    assert forbidden["status"] == 403 and "owner" in forbidden["detail"]
    await stack.command("POST", "/api/v1/streams/no-such-stream/polls", owner, body, expect=404)
    await stack.command("POST", f"/api/v1/streams/{stream}/polls/no-such-poll/close", owner, expect=404)
    await stack.command("POST", f"/api/v1/streams/{stream}/polls/no-such-poll/close", viewer, expect=403)
    for bad in (
        {"question": "Q?", "options": ["only one"]},
        {"question": "Q?", "options": ["a", "b", "c", "d", "e", "f"]},
        {"question": "Q?", "options": ["a", "b"], "duration_s": 5},
        {"question": "Q?", "options": ["a", "b"], "duration_s": 7200},
        {"question": "Q?", "options": ["same", "Same"]},
        {"question": "", "options": ["a", "b"]},
    ):
        problem = await stack.command("POST", f"/api/v1/streams/{stream}/polls", owner, bad, expect=422)
        assert problem["status"] == 422, problem
    missing = await stack.client.get("/api/v1/polls/no-such-poll")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem")
    assert (await stack.client.get("/api/v1/streams/no-such-stream/polls")).status_code == 404


async def _open_vote_and_end(
    stack: ApiStack,
    stream: str,
    owner: User,
    voters: list[User],
    troll: User,
    clients: dict[str, Client],
    watcher: Client,
) -> str:
    body = {"question": "Who takes map 3?", "options": OPTIONS}
    opened = await stack.command("POST", f"/api/v1/streams/{stream}/polls", owner, body, expect=202)
    acked = time.monotonic()
    poll_id = opened["poll_id"]
    assert opened["position"].startswith("polls:")
    zero = await watcher.wait_for(is_poll(poll_id), timeout_s=TIMEOUT_S)
    shown_after = time.monotonic() - acked  # printed, never asserted: the machine is shared
    assert (zero["counts"], zero["total"], zero["final"]) == ([0, 0, 0], 0, False)
    shown = await stack.query(f"/api/v1/polls/{poll_id}", after=[tally_position(zero)])
    assert (shown["question"], shown["options"], shown["status"]) == (body["question"], OPTIONS, "open")
    assert (shown["stream_id"], shown["opened_by"], shown["closes_at"]) == (stream, owner.user_id, None)

    # Votes over the edge: a, b, c vote 0, 1, 1; then a changes to 2.
    ballots = [(voters[0], 0, "v1"), (voters[1], 1, "v2"), (voters[2], 1, "v3"), (voters[0], 2, "v4")]
    for voter, option, nonce in ballots:
        await clients[voter.user_id].send(
            type="vote", stream=stream, poll=poll_id, option=option, nonce=nonce
        )
        await ack(clients[voter.user_id], nonce)
    voted = time.monotonic()
    await watcher.wait_for(lambda m: is_poll(poll_id)(m) and m["counts"] == [0, 2, 1], timeout_s=TIMEOUT_S)
    tallied_after = time.monotonic() - voted

    # The troll: a malformed /poll is an error frame; a well-formed /poll and /endpoll are acked
    # (the edge cannot check rights) and ignored by the agent.
    mine = clients[troll.user_id]
    await mine.send(type="chat", stream=stream, text="/poll Rigged? | yes", nonce="t0")
    error = await mine.wait_for(lambda m: m.get("nonce") == "t0", timeout_s=TIMEOUT_S)
    assert (error["type"], error["code"]) == ("error", "bad_command") and "2 options" in error["message"]
    await mine.send(type="chat", stream=stream, text="/poll Rigged? | yes | no", nonce="t1")
    troll_poll = (await ack(mine, "t1"))["message_id"]
    await mine.send(type="chat", stream=stream, text="/endpoll", nonce="t2")
    await ack(mine, "t2")
    late = clients[voters[2].user_id]  # votes after the troll's /endpoll still count: not closed
    await late.send(type="vote", stream=stream, poll=poll_id, option=0, nonce="v5")
    await ack(late, "v5")
    await watcher.wait_for(lambda m: is_poll(poll_id)(m) and m["counts"] == [1, 1, 1], timeout_s=TIMEOUT_S)

    # The owner ends it in chat.
    await clients[owner.user_id].send(type="chat", stream=stream, text="/endpoll", nonce="o1")
    await ack(clients[owner.user_id], "o1")
    ended = time.monotonic()
    final = await watcher.wait_for(is_poll(poll_id, final=True), timeout_s=TIMEOUT_S)
    finished_after = time.monotonic() - ended
    print(
        f"\nopen (API ack) -> zero tally at a subscriber {shown_after * 1000:.0f} ms; last vote ack -> "
        f"tally {tallied_after * 1000:.0f} ms; /endpoll ack -> final tally {finished_after * 1000:.0f} ms"
    )
    assert (final["counts"], final["total"]) == ([1, 1, 1], 3)
    # The troll's poll came before the /endpoll in the log: had it opened, its tally would be out.
    assert not any(m["type"] == "poll" and m["poll"] == troll_poll for m in watcher.messages)
    assert not any(m["type"] == "chat" for m in watcher.messages)  # commands are never chat

    stored = await stack.query(f"/api/v1/polls/{poll_id}", after=[tally_position(final)])
    assert (stored["status"], stored["final"], stored["counts"], stored["total"]) == (
        "closed",
        True,
        [1, 1, 1],
        3,
    )
    assert stored["closed_by"] == owner.user_id and stored["closed_at"] is not None
    listed = await stack.query(f"/api/v1/streams/{stream}/polls")
    assert [p["poll_id"] for p in listed["items"]] == [poll_id]
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT counts, total, final, closed_by FROM {stack.namespace.read_schema}.polls"
            " WHERE poll_id = %s",
            (poll_id,),
        )
        assert await cur.fetchall() == [([1, 1, 1], 3, True, owner.user_id)]
        cur = await conn.execute(
            f"SELECT kind, actor FROM {stack.namespace.read_schema}.poll_requests WHERE stream_id = %s"
            " ORDER BY requested_at",
            (stream,),
        )
        requests = await cur.fetchall()
    assert requests == [
        ("open", owner.user_id),
        ("open", troll.user_id),
        ("close", troll.user_id),
        ("close", owner.user_id),
    ]
    return poll_id


async def _moderator_in_chat(
    stack: ApiStack, stream: str, mod: User, client: Client, watcher: Client
) -> None:
    # The appointment is effective once the worker's roster has read it (eventually consistent).
    async def roster_knows() -> bool:
        line = 'esports_chat_roster_events_total{type="ModeratorAppointed"}'
        return await asyncio.to_thread(worker_metric, stack, line) >= 1

    await eventually(roster_knows, timeout_s=TIMEOUT_S)
    await client.send(
        type="chat", stream=stream, text="/poll MVP of the series? | zywOo | m0NESY | 90s", nonce="m1"
    )
    poll_id = (await ack(client, "m1"))["message_id"]
    zero = await watcher.wait_for(is_poll(poll_id), timeout_s=TIMEOUT_S)
    shown = await stack.query(f"/api/v1/polls/{poll_id}", after=[tally_position(zero)])
    assert (shown["options"], shown["opened_by"], shown["status"]) == (
        ["zywOo", "m0NESY"],
        mod.user_id,
        "open",
    )
    assert shown["closes_at"] is not None
    await client.send(type="chat", stream=stream, text="/endpoll", nonce="m2")
    await ack(client, "m2")
    final = await watcher.wait_for(is_poll(poll_id, final=True), timeout_s=TIMEOUT_S)
    assert (final["counts"], final["total"]) == ([0, 0], 0)
    stored = await stack.query(f"/api/v1/polls/{poll_id}", after=[tally_position(final)])
    assert (stored["status"], stored["closed_by"]) == ("closed", mod.user_id)
