"""What an earn reads before the rules decide: the wallet, locked, then the tier ladder, the
campaigns running when the booking was paid, refunds and debt so far, and trailing points; in
one call (earning_facts, migration 0008) whose reads come after the lock, so they see whatever
the wallet's previous holder wrote."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.core.errors import NotFound
from loyalty.earning import rules
from loyalty.earning.campaigns import campaign_of
from loyalty.tiers import rules as tier_rules
from loyalty.tiers import store as tier_store


@dataclass(frozen=True)
class EarnFacts:
    """What an earn reads besides the wallet, in one statement after the wallet is locked (so it
    sees every refund and debt written by whoever held the wallet before)."""

    as_of: datetime
    accrual_exists: bool  # the booking already has its accrual: a replay
    earn_exists: bool  # the earn key was posted without an accrual row (an older earn)
    ladder: tier_rules.Ladder
    multipliers: dict[str, int]
    campaigns: list[rules.Campaign]  # running when the booking was paid
    refunded: int  # money refunded on the booking so far
    full_refund: bool
    debt: int  # points the customer owes
    trailing: int  # points on the trailing-12-month basis (0 unless a tier counts them)

    def multiplier(self, tier: str) -> int:
        if tier not in self.multipliers:
            raise NotFound(f"no tier {tier!r} in loyalty_tiers", tier=tier)
        return self.multipliers[tier]


# The wallet locked first, then the facts read after the lock (migration 0008).
_FACTS = text(
    "SELECT * FROM earning_facts(p_user_id => :u, p_booking_id => :b, "
    "p_idempotency_key => :k, p_paid_at => :paid_at)"
)
_TRAILING = text(f"SELECT {tier_store.trailing_points_sql(':w')}")


async def lock_and_read(
    conn: AsyncConnection, user_id: str, booking_id: str, key: str, paid_at: datetime
) -> tuple[ledger.WalletState, EarnFacts]:
    """The user's wallet (opened on its first earn), locked for the rest of the transaction,
    and what the earn rules need to know, read after the lock: one round trip (two when the
    ladder counts trailing points)."""
    row = (
        (await conn.execute(_FACTS, {"u": user_id, "b": booking_id, "k": key, "paid_at": paid_at}))
        .mappings()
        .one()
    )
    wallet = ledger.WalletState.of(row)
    tiers = row["tiers"] or []
    ladder = tier_rules.Ladder.of_rows(tiers)
    trailing = 0
    if ladder.counts_trailing:
        trailing = int((await conn.execute(_TRAILING, {"w": wallet.wallet_id})).scalar_one())
    facts = EarnFacts(
        as_of=row["as_of"],
        accrual_exists=row["accrual_exists"],
        earn_exists=row["earn_exists"],
        ladder=ladder,
        multipliers={t["code"]: t["earn_multiplier_pct"] for t in tiers},
        campaigns=[campaign_of(c) for c in row["campaigns"] or []],
        refunded=int(row["refunded"]),
        full_refund=bool(row["full_refund"]),
        debt=int(row["debt"]),
        trailing=trailing,
    )
    return wallet, facts
