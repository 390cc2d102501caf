"""How a resolved prediction's pot is shared out: pure, exact, integer points.

The rule (the README's *Channel points*):

1. The pot ``T`` is every stake on the prediction; ``W`` is the stakes on the winning outcome.
2. Each winning stake ``s`` gets ``floor(s * T / W)``: its stake back and its share of the losers'.
3. What rounding down leaves over, ``R = T - sum(floor(...))``, is fewer points than there are winners:
   one point each goes to the ``R`` winners with the largest remainders ``(s * T) mod W`` (the
   fractions rounding cut off), ties going to the larger stake, then to the smaller user id.
4. A losing stake gets 0.
5. Nobody on the winning outcome (``W == 0``): every stake is refunded, as if cancelled.

So the payouts add up to ``T`` exactly: the pot ends at 0, and no point is made or lost.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["Stake", "payouts"]

Stake = tuple[int, int]  # (outcome, amount)


def payouts(stakes: Mapping[str, Stake], winning: int) -> dict[str, int] | None:
    """Every staker's payout (0 for a loss) when ``winning`` won; None when nobody backed it (refund)."""
    pot = sum(amount for _, amount in stakes.values())
    backed = sum(amount for outcome, amount in stakes.values() if outcome == winning)
    if backed == 0:
        return None
    shares: dict[str, int] = {}
    remainders: list[tuple[int, int, str]] = []
    for user, (outcome, amount) in stakes.items():
        if outcome != winning:
            shares[user] = 0
            continue
        share, remainder = divmod(amount * pot, backed)
        shares[user] = share
        remainders.append((remainder, amount, user))
    left = pot - sum(shares.values())
    remainders.sort(key=lambda r: (-r[0], -r[1], r[2]))
    for _, _, user in remainders[:left]:
        shares[user] += 1
    return shares
