"""Hot stream: one stream watched by a huge audience (counted by the presence workers), one poll
with a huge electorate (tallied by the vote workers) and one stream's busy chat (decided by the chat
workers).

Edges publish ``ViewerPresenceBatch`` records (up to 500 beats, every session of a record on one
partition of ``viewers.presence``); the presence worker in ``esports processors`` absorbs them and
reports partial counts that the ``viewer_counts`` agent merges into ``ViewerCountChanged``. Votes are
``PollVoted`` records on ``polls.votes``, keyed by voter; the vote worker keeps each voter's votes per
partition and reports partial tallies that the poll agent sums into ``PollTallyUpdated``. Each
scenario uses fresh topics (a unique prefix, deleted after) and real worker subprocesses (each on a
free web port), and measures:

1. the baseline: a raw aiokafka consumer (no group, every partition from the beginning, fetching
   like the worker, no decoding) reading the very records the workers read, records/s and beats/s;
   beside it the same loop with ``EventCodec.decode`` (the floor of anything that looks inside);
2. one stream, N sessions, 1 worker. Cold: every beat pre-loaded, then the worker started; beats/s
   from its ``presence: took`` log line (partitions assigned and sought; the process start-up is
   printed apart) until ``esports_viewer_heartbeats_total`` on its /metrics shows N, and the time
   until ``viewers.counts`` holds a ViewerCountChanged with the exact count. Warm: on the running,
   idle worker, N more sessions of a second stream are loaded while the worker is paused (SIGSTOP,
   well within the group's session timeout), then it is resumed: beats/s from the resume until its
   counter shows them all (sampled every 50 ms, with its CPU time from /proc), time to the exact count;
3. the warm burst with 2 worker processes once their group has split the partitions: beats/s per
   worker (its own counter) and in total, CPU busy, time to the exact count;
4. one stream, ``--big-sessions`` distinct sessions whose heartbeat times are spread over the last
   15 s as an edge fleet sends them (20 edges, each flushing every 5 s, one record per partition and
   flush, at most 500 beats), as a warm burst through 1 worker, counted exactly; worker memory per
   session = (VmRSS after the exact count - VmRSS before loading) / sessions, and, as a reference,
   the state alone (``PartitionPresence`` filled in this process, measured with tracemalloc);
5. the bare-Faust ceiling: a Faust agent that only counts raw records (one heartbeat a record, as
   the old design read them) in a subprocess, records/s, beside a raw aiokafka read of the same records;
6. one poll, ``--voters`` distinct voters (4 options, each voter's choice random), 10% of whom vote
   again for another option after everyone voted: 1.1 x voters ``PollVoted`` records. With 1, then 2
   worker processes of the polls family (``esports processors --only polls``) split over
   ``polls.votes``, the poll opened (and accepted: its empty tally published), the votes are loaded
   while the workers are paused, then they resume: votes/s per worker from
   ``esports_poll_votes_total`` (sampled as in 2), the time until ``polls.tallies`` shows a running
   tally equal to the recount (each voter's latest vote), then PollClosed and the time until the
   final tally, which must equal the recount; the baselines are read from the same ``polls.votes``;
7. one stream's chat through moderation: with 1, then 2 worker processes of the moderation family
   (``esports processors --only moderation``) split over ``chat.sent``, the stream created and its
   owner's ``/block badword`` decided (its ``ChatSettingsChanged`` on ``chat.messages``, its rules on
   every partition of ``chat.sent``), a paced producer submits ``--chat-rate`` ``ChatMessageSent`` a
   second for ``--chat-seconds`` (a batch every 10 ms, each message built just before it is
   published, so its ``occurred_at`` is the submit time) from ~20,000 viewers and a few spammers
   (rate-limited), mixing ordinary chat, repeats (duplicates), the blocked term and an obfuscated
   one (held). A reader of ``chat.messages`` started before the load takes each decision's arrival
   minus its message's ``occurred_at``: p50 and p99 submit -> chat.messages, with decided/s and
   accepted/s over the load window. Every message must be decided once within 30 s of the load's end,
   no decision may be on the log twice, and each must equal the whole-stream ``decide()`` (the unit
   table, fed the stream, the ``/block`` and the messages in send order; computed once the run's
   topics are gone, it takes ~2.5 min at 60,000 messages from 20,000 senders); the baselines are read
   from the same ``chat.sent`` once the workers are killed.

Pausing the workers while a burst is loaded keeps the bench's own producer (on the same CPUs) out of
the figures (scenario 7 is paced instead: its producer and reader run beside the workers, with the
bench's cyclic garbage collector off while it is timed); the poll workers run with a 45 s group
session (loading 220,000 votes takes ~10 s). The counting window is raised to 600 s
(``ESPORTS_PROCESSORS__VIEWER_WINDOW_S``) so that pre-loaded heartbeats do not expire during a run.
Scenarios 1-3, 6 and 7 run ``--repeats`` times (medians), 4 and 5 once. Progress goes to stderr,
figures to stdout; the exit code is 1 if a count or tally never became exact, a final tally differs
from the recount, or a chat message was left undecided, decided twice or otherwise than the
whole-stream ``decide()``. The old design's ~2,800 heartbeats/s on one stream is printed as a
historical reference only.

    python bench/hot_stream.py [--sessions 200000] [--big-sessions 1000000] [--voters 200000]
                               [--chat-rate 2000] [--chat-seconds 30] [--repeats 3] [--partitions 6]
                               [--faust-records 50000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from _hot_stream_chat import chat_rows, one_chat
from _hot_stream_chat import print_goal as print_chat_goal
from _hot_stream_faust import BareFaustFailed, bare_faust
from _hot_stream_polls import CHANGED, Ballot, ballot, one_poll, poll_rows
from _hot_stream_polls import print_goal as print_polls_goal
from _hot_stream_support import NotExact, merged, print_run, print_table, progress, row
from _hot_stream_viewers import (
    HISTORICAL_BEATS_S,
    WINDOW_S,
    big_rows,
    big_stream,
    one_worker,
    reread_note,
    two_workers,
    viewer_rows,
)
from _hot_stream_viewers import print_goal as print_viewers_goal

from events.codec import EventCodec
from infra.settings import Settings
from schemas import SCHEMAS_DIR

Figures = dict[str, float]


async def run(args: argparse.Namespace) -> None:
    base, codec = Settings(), EventCodec.load(SCHEMAS_DIR)
    votes = ballot(codec, args.voters) if args.voters else None
    names = ("one", "two", "poll_one", "poll_two", "chat_one", "chat_two")
    runs: dict[str, list[Figures]] = {name: [] for name in names}
    for i in range(args.repeats):
        if args.sessions:
            await viewer_runs(args, base, codec, i, runs)
        if votes is not None:
            await poll_runs(args, base, codec, votes, i, runs)
        if args.chat_rate:
            await chat_runs(args, base, codec, i, runs)
    big: Figures = {}
    if args.big_sessions:
        progress(f"{args.big_sessions:,} sessions spread as an edge fleet sends them, 1 worker")
        big = await big_stream(base, codec, args.big_sessions, args.partitions)
        print_run("big      ", 0, big)
    faust: Figures | str = "--faust-records 0"
    if args.faust_records:
        progress(f"bare Faust agent, {args.faust_records:,} single records")
        try:
            faust = await bare_faust(base, codec, args.faust_records, args.partitions)
        except BareFaustFailed as e:
            faust = str(e)
    report(args, {name: merged(figures) for name, figures in runs.items()}, big, faust)


async def viewer_runs(
    args: argparse.Namespace, base: Settings, codec: EventCodec, i: int, runs: dict[str, list[Figures]]
) -> None:
    progress(f"run {i + 1}/{args.repeats}: 1 worker, {args.sessions:,} sessions")
    runs["one"].append(await one_worker(base, codec, args.sessions, args.partitions))
    print_run("1 worker ", i, runs["one"][-1])
    progress(f"run {i + 1}/{args.repeats}: 2 workers")
    runs["two"].append(await two_workers(base, codec, args.sessions, args.partitions))
    print_run("2 workers", i, runs["two"][-1])


async def poll_runs(
    args: argparse.Namespace,
    base: Settings,
    codec: EventCodec,
    votes: Ballot,
    i: int,
    runs: dict[str, list[Figures]],
) -> None:
    for count, name in ((1, "poll_one"), (2, "poll_two")):
        progress(f"run {i + 1}/{args.repeats}: 1 poll, {args.voters:,} voters, {count} vote worker(s)")
        runs[name].append(await one_poll(base, codec, votes, args.partitions, count))
        print_run(f"poll, {count} worker{'s' if count > 1 else ''}", i, runs[name][-1])


async def chat_runs(
    args: argparse.Namespace, base: Settings, codec: EventCodec, i: int, runs: dict[str, list[Figures]]
) -> None:
    for count, name in ((1, "chat_one"), (2, "chat_two")):
        rate = f"{args.chat_rate:,} msg/s for {args.chat_seconds:g} s"
        progress(f"run {i + 1}/{args.repeats}: 1 stream's chat, {rate}, {count} chat worker(s)")
        figures = await one_chat(base, codec, args.partitions, count, args.chat_rate, args.chat_seconds)
        runs[name].append(figures)
        print_run(f"chat, {count} worker{'s' if count > 1 else ''}", i, runs[name][-1])


# --- report ---------------------------------------------------------------------------------------


def report(args: argparse.Namespace, runs: dict[str, Figures], big: Figures, faust: Figures | str) -> None:
    n, b, v = f"{args.sessions:,}", f"{args.big_sessions:,}", f"{args.voters:,}"
    parts = (
        [f"1 stream, {n} sessions, {args.partitions} partitions of viewers.presence"] if args.sessions else []
    )
    if args.voters:
        changed = f"+{int(args.voters * CHANGED):,} changed votes"
        parts.append(f"1 poll, {v} voters ({changed}), {args.partitions} partitions of polls.votes")
    if args.chat_rate:
        chat = f"{args.chat_rate:,} msg/s for {args.chat_seconds:g} s"
        parts.append(f"1 stream's chat, {chat}, {args.partitions} partitions of chat.sent")
    print(f"hot stream: {'; '.join(parts) or 'scenarios 4-5 only'}")
    print(f"  medians of {args.repeats} run(s) ({b} sessions and bare Faust: 1 run)")
    print(
        f"  {os.cpu_count()} CPUs shared by broker, workers and bench; counting window raised to "
        f"{WINDOW_S} s (ESPORTS_PROCESSORS__VIEWER_WINDOW_S) so pre-loaded heartbeats do not expire;"
    )
    print(
        "  bursts are loaded while the running workers are paused (SIGSTOP, shorter than the group's"
        " session timeout), so the bench's producer bounds no figure"
    )
    if args.chat_rate:
        print(
            "  the chat load is paced instead (the workers run while it is submitted): the bench's producer"
            " and its chat.messages reader share the CPUs with them"
        )
    print("  ratio = figure / raw aiokafka consume of the same records in the same run")
    one, two = runs["one"], runs["two"]
    rows = viewer_rows(n, one, two) if one else []
    rows += big_rows(b, big)
    if isinstance(faust, dict):
        label = "bare Faust agent counting single records"
        rows.append(row(label, faust["faust_records"], "rec/s", faust["faust_raw_records"]))
    if one or big:
        rows.append(row("historical: old design, one stream (not measured)", HISTORICAL_BEATS_S, "beats/s"))
    rows += poll_rows(args.voters, runs["poll_one"], runs["poll_two"])
    rows += chat_rows(args.chat_rate, args.chat_seconds, runs["chat_one"], runs["chat_two"])
    print_table(rows)
    if isinstance(faust, str):
        print(f"  bare Faust ceiling: skipped ({faust})")
    if one:
        print_viewers_goal(one, two)
    print_polls_goal(runs["poll_one"], runs["poll_two"])
    print_chat_goal(args.chat_rate, runs["chat_one"], runs["chat_two"])
    reread_note(one, two, big)


# --- main -----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sessions", type=int, default=200_000, help="sessions of the hot stream (scenarios 1-3; 0 skips)"
    )
    parser.add_argument(
        "--big-sessions", type=int, default=1_000_000, help="sessions of scenario 4 (0 skips it)"
    )
    parser.add_argument(
        "--voters", type=int, default=200_000, help="voters of the poll (scenario 6; 0 skips)"
    )
    parser.add_argument(
        "--chat-rate",
        type=int,
        default=2_000,
        help="chat messages per second submitted to one stream (scenario 7; 0 skips)",
    )
    parser.add_argument(
        "--chat-seconds", type=float, default=30.0, help="how long the chat load of scenario 7 lasts"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of scenarios 1-3, 6 and 7 (medians printed)"
    )
    parser.add_argument("--partitions", type=int, default=6, help="partitions of every bench topic")
    parser.add_argument(
        "--faust-records", type=int, default=50_000, help="records of the bare-Faust run (0 skips)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 / 100,000 sessions, 20,000 voters, 10 s of chat, 1 run (a smoke check)",
    )
    args = parser.parse_args()
    if args.quick:  # smaller sizes, unless given explicitly
        quick = {
            "sessions": 20_000,
            "big_sessions": 100_000,
            "voters": 20_000,
            "chat_seconds": 10.0,
            "repeats": 1,
            "faust_records": 10_000,
        }
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main() -> int:
    args = parse_args()
    try:
        asyncio.run(run(args))
    except NotExact as e:
        print(f"bench/hot_stream.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
