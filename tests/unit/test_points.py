"""Channel points, pure parts: the payout rule, one partition's ledger decisions, the watch windows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from events.base import Event
from events.points import (
    MAX_STAKE,
    PointsEarned,
    PointsGranted,
    PointsStaked,
    StakeRefunded,
    StakeRefused,
    StakeRequested,
    StakesClosing,
    StakeSettled,
    StakeSettlementOrdered,
)
from stream_processors.points.earning import WatchWindows
from stream_processors.points.ledger import PartitionLedger
from stream_processors.points.settlement import payouts

LATER = datetime.now(UTC) + timedelta(hours=1)


def expected_payouts(stakes: dict[str, tuple[int, int]], winning: int) -> dict[str, int] | None:
    """The README's rule, recomputed with exact fractions."""
    pot = sum(a for _, a in stakes.values())
    backed = sum(a for o, a in stakes.values() if o == winning)
    if not backed:
        return None
    exact = {u: Fraction(a * pot, backed) for u, (o, a) in stakes.items() if o == winning}
    paid = {u: int(share) for u, share in exact.items()}  # floor: shares are positive
    order = sorted(exact, key=lambda u: (-(exact[u] - paid[u]), -stakes[u][1], u))
    for user in order[: pot - sum(paid.values())]:
        paid[user] += 1
    return {u: paid.get(u, 0) for u in stakes}


stakes_strategy = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.tuples(st.integers(0, 3), st.integers(1, 10_000)),
    min_size=1,
    max_size=30,
)


@given(stakes_strategy, st.integers(0, 3))
def test_payouts_follow_the_rule_and_add_up_to_the_pot(
    stakes: dict[str, tuple[int, int]], winning: int
) -> None:
    shares = payouts(stakes, winning)
    assert shares == expected_payouts(stakes, winning)
    if shares is not None:
        assert sum(shares.values()) == sum(a for _, a in stakes.values())
        assert all(shares[u] == 0 for u, (o, _) in stakes.items() if o != winning)


def test_a_small_pot_by_hand() -> None:
    # pot 10, winners' 3: 1*10/3 = 3.33, 2*10/3 = 6.67 -> 3 and 6, the 1 left to the larger remainder
    assert payouts({"a": (0, 1), "b": (0, 2), "c": (1, 7)}, 0) == {"a": 3, "b": 7, "c": 0}
    assert payouts({"a": (0, 5)}, 1) is None  # nobody backed outcome 1: refund


def _stake(user: str, amount: int, outcome: int = 0, prediction: str = "p1", **kw: object) -> StakeRequested:
    return StakeRequested(
        user_id=user,
        prediction_id=prediction,
        stream_id="s1",
        outcome=outcome,
        amount=amount,
        locks_at=kw.pop("locks_at", LATER),  # type: ignore[arg-type]
    )


def _earn(user: str, amount: int, grant: str) -> PointsEarned:
    return PointsEarned(user_id=user, amount=amount, reason="watch", grant_id=grant)


def test_stakes_are_decided_on_the_balance_the_lock_and_the_outcome() -> None:
    ledger = PartitionLedger()
    assert isinstance(ledger.decide(_earn("u", 100, "g1"))[0], PointsGranted)
    assert ledger.decide(_earn("u", 100, "g1")) == []  # the same earning found again
    [refused] = ledger.decide(_stake("u", 101))
    assert isinstance(refused, StakeRefused) and refused.reason == "not enough points: you have 100"
    staked = _stake("u", 60)
    assert isinstance(ledger.decide(staked)[0], PointsStaked)
    assert ledger.decide(staked) == []  # a request read twice is decided once
    [switch] = ledger.decide(_stake("u", 10, outcome=1))
    assert isinstance(switch, StakeRefused) and "already predicted outcome 1" in switch.reason
    [late] = ledger.decide(_stake("u", 10, locks_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert isinstance(late, StakeRefused) and "locked" in late.reason
    [toolarge] = ledger.decide(_stake("u", MAX_STAKE + 1))
    assert isinstance(toolarge, StakeRefused)
    assert ledger.decide(StakesClosing(user_id="k", prediction_id="p1", stream_id="s1", marked_partition=0))
    [closed] = ledger.decide(_stake("u", 10))
    assert isinstance(closed, StakeRefused) and "locked" in closed.reason
    order = StakeSettlementOrdered(user_id="u", prediction_id="p1", stream_id="s1", payout=150)
    [settled] = ledger.decide(order)
    assert isinstance(settled, StakeSettled) and settled.balance == 190 and settled.staked == 60
    again = StakeSettlementOrdered(user_id="u", prediction_id="p1", stream_id="s1", payout=150)
    assert ledger.decide(again) == []  # settled once, however often ordered
    assert ledger.balances == {"u": 190} and ledger.stakes == {}


def test_an_order_before_the_partition_closed_is_ignored_and_a_refund_returns_the_stake() -> None:
    ledger = PartitionLedger()
    ledger.decide(_earn("u", 50, "g"))
    ledger.decide(_stake("u", 20))
    refund = StakeSettlementOrdered(user_id="u", prediction_id="p1", stream_id="s1", refund=True)
    assert ledger.decide(refund) == []
    ledger.decide(StakesClosing(user_id="k", prediction_id="p1", stream_id="s1", marked_partition=0))
    [refunded] = ledger.decide(
        StakeSettlementOrdered(user_id="u", prediction_id="p1", stream_id="s1", refund=True)
    )
    assert isinstance(refunded, StakeRefunded) and refunded.amount == 20 and refunded.balance == 50


requests = st.lists(
    st.one_of(
        st.builds(
            _earn, st.sampled_from("abc"), st.integers(1, 500), st.sampled_from(["g1", "g2", "g3", "g4"])
        ),
        st.builds(
            _stake,
            st.sampled_from("abc"),
            st.integers(-5, 600),
            st.integers(0, 2),
            st.sampled_from(["p", "q"]),
        ),
        st.builds(
            StakesClosing,
            user_id=st.just("k"),
            prediction_id=st.sampled_from(["p", "q"]),
            stream_id=st.just("s1"),
            marked_partition=st.just(0),
        ),
        st.builds(
            StakeSettlementOrdered,
            user_id=st.sampled_from("abc"),
            prediction_id=st.sampled_from(["p", "q"]),
            stream_id=st.just("s1"),
            payout=st.integers(0, 50),
            refund=st.booleans(),
        ),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(requests, st.data())
def test_a_ledger_folded_back_is_the_ledger_that_decided(batch: list[Event], data: st.DataObject) -> None:
    """Balances never go negative, each entry's balance is the running one, and a worker reading the
    entries back (then handed the last requests again) has the same balances and decides nothing twice."""
    ledger, entries = PartitionLedger(), []
    for request in batch:
        for entry in ledger.decide(request):
            entries.append(entry)
            assert ledger.balances.get(entry.user_id, 0) >= 0
            if hasattr(entry, "balance"):
                assert entry.balance == ledger.balances.get(entry.user_id, 0)
    again = PartitionLedger()
    for entry in entries:
        again.apply(entry)
    assert (
        again.balances == ledger.balances and again.stakes == ledger.stakes and again.closed == ledger.closed
    )
    # A restarted worker re-reads requests from its last commit: none decided before is decided again
    # (one ignored before may be decided now: an order that came before its partition closed).
    decided = {e.causation_id for e in entries}
    redelivered = batch[data.draw(st.integers(0, len(batch))) :]
    assert not [e for r in redelivered for e in again.decide(r) if e.causation_id in decided]


def test_watching_earns_once_per_window_seen_in_four_fifths() -> None:
    windows = WatchWindows(window_ms=5_000)
    base = 1_000_000  # a window start (a multiple of 5,000)
    assert [windows.seen("u", "s", base + at) for at in (0, 1_100, 2_100)] == [None, None, None]
    assert windows.seen("u", "s", base + 2_900) is None  # the same slot again: still three fifths
    assert windows.seen("u", "s", base + 4_500) == base
    assert windows.seen("u", "s", base + 4_900) is None  # granted once
    assert windows.seen("v", "s", base + 4_900) is None  # another viewer: one fifth
    windows.expire(base + 20_000)
    assert windows.seen("u", "s", base + 100) is None  # forgotten, and a new first fifth


def test_grant_ids_name_the_user_the_stream_and_the_window() -> None:
    grant = _earn("u", 1, f"watch:s:u:{uuid.uuid4()}")
    assert PartitionLedger().decide(grant)[0].causation_id == str(grant.event_id)


def test_an_entry_on_the_log_twice_is_folded_once() -> None:
    """A publish retried after a broker failure that answered too late puts a copy on the log."""
    decided = PartitionLedger()
    entries = [*decided.decide(_earn("u", 100, "g")), *decided.decide(_stake("u", 30))]
    again = PartitionLedger()
    for entry in [entries[0], entries[0], entries[1], entries[1]]:
        again.apply(entry)
    assert again.balances == {"u": 70} and again.stakes[("p1", "u")].amount == 30


def test_a_stake_on_the_log_twice_counts_once_in_the_pot() -> None:
    from stream_processors.points.prediction_worker import Pot

    pot = Pot()
    for _ in range(2):
        pot.stake("u", 1, 40, "request-1")
    pot.stake("u", 1, 10, "request-2")
    assert pot.stakes == {"u": (1, 50)} and pot.totals == {1: [50, 1]}
