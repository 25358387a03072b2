"""What an earn reads before the rules decide: the tier ladder, the campaigns running when the
booking was paid, refunds and debt so far, trailing points; in one statement, read after the
wallet is locked so it sees whatever the wallet's previous holder wrote."""

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


_FACTS = text(
    "SELECT now() AS as_of, "
    "EXISTS (SELECT 1 FROM booking_accruals WHERE booking_id = :b) AS accrual_exists, "
    "EXISTS (SELECT 1 FROM wallet_transactions WHERE idempotency_key = :k) AS earn_exists, "
    "(SELECT array_agg(t ORDER BY rank) FROM loyalty_tiers t) AS tiers, "
    "(SELECT array_agg(c ORDER BY campaign_id) FROM campaigns c "
    " WHERE starts_at <= :paid_at AND ends_at > :paid_at) AS campaigns, "
    "(SELECT COALESCE(SUM(amount), 0) FROM booking_refunds WHERE booking_id = :b) AS refunded, "
    "(SELECT COALESCE(bool_or(full_refund), false) FROM booking_refunds WHERE booking_id = :b) "
    "AS full_refund, "
    "(SELECT COALESCE(SUM(points), 0) FROM points_debt_entries WHERE user_id = :u) AS debt, "
    "CASE WHEN EXISTS (SELECT 1 FROM loyalty_tiers WHERE basis = 'trailing_12m') "
    f"THEN {tier_store.trailing_points_sql(':w')} ELSE 0 END AS trailing"
)


async def earn_facts(
    conn: AsyncConnection, wallet: ledger.WalletState, booking_id: str, key: str, paid_at: datetime
) -> EarnFacts:
    row = (
        (
            await conn.execute(
                _FACTS,
                {
                    "b": booking_id,
                    "k": key,
                    "u": wallet.user_id,
                    "w": wallet.wallet_id,
                    "paid_at": paid_at,
                },
            )
        )
        .mappings()
        .one()
    )
    tiers = row["tiers"] or []
    return EarnFacts(
        as_of=row["as_of"],
        accrual_exists=row["accrual_exists"],
        earn_exists=row["earn_exists"],
        ladder=tier_rules.Ladder.of(
            [
                tier_rules.TierStep(
                    code=t["code"], rank=t["rank"], threshold=t["threshold"], basis=t["basis"]
                )
                for t in tiers
            ]
        ),
        multipliers={t["code"]: t["earn_multiplier_pct"] for t in tiers},
        campaigns=[campaign_of(c) for c in row["campaigns"] or []],
        refunded=int(row["refunded"]),
        full_refund=bool(row["full_refund"]),
        debt=int(row["debt"]),
        trailing=int(row["trailing"]),
    )
