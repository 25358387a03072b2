"""Wallet use cases behind the HTTP endpoints: the wallet with its tier progress, enrolment, the
history, admin adjustments. Each takes the request's connection (inside the transaction owned by
api.deps), goes through loyalty.ledger for every write, and returns the response model. Nothing
here commits.

Earn on payment is loyalty.earning's (earn_endpoint: the same accrual as the booking events).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.core.errors import WalletNotFound
from loyalty.core.settings import Settings
from loyalty.ledger.accounts import enrol as open_for_enrolment
from loyalty.ledger.schemas import BalanceOut, PostingOut, TransactionOut, ValuedTransactionOut
from loyalty.tiers import rules as tier_rules
from loyalty.tiers import store as tier_store
from loyalty.tiers.schemas import PendingDowngradeOut, TierStatusOut
from loyalty.wallets.cursors import TRANSACTIONS
from loyalty.wallets.schemas import (
    AdjustmentIn,
    NextExpiryOut,
    NextTierOut,
    TierDetailsOut,
    TransactionPage,
    TransactionQuery,
    WalletOut,
)

# Everything the wallet view shows, in one statement: the wallet, the ladder, the points on
# the trailing basis, a pending downgrade, pending and owed points.
_VIEW = text(
    "SELECT w.wallet_id, w.user_id, w.balance, w.held, w.tier, w.lifetime_points, w.version, "
    "w.created_at, w.updated_at, now() AS as_of, "
    "(SELECT array_agg(t ORDER BY rank) FROM loyalty_tiers t) AS tiers, "
    f"{tier_store.trailing_points_sql('w.wallet_id')} AS trailing, "
    "s.downgrade_pending_since, s.downgrade_to, "
    "(SELECT COALESCE(SUM(pending_points), 0) FROM booking_accruals "
    " WHERE user_id = w.user_id AND status = 'pending') AS pending_points, "
    "(SELECT COALESCE(SUM(points), 0) FROM points_debt_entries WHERE user_id = w.user_id) "
    "AS debt_points "
    "FROM wallets w LEFT JOIN wallet_tier_status s ON s.wallet_id = w.wallet_id "
    "WHERE w.user_id = :u"
)


async def wallet_view(conn: AsyncConnection, user_id: str, settings: Settings) -> WalletOut:
    """Balance, tier and where the wallet stands in the ladder: progress is computed once, from
    one read, for both the next tier and the tier status."""
    row = (await conn.execute(_VIEW, {"u": user_id})).mappings().first()
    if row is None:
        raise WalletNotFound(f"no wallet for user {user_id!r}", user_id=user_id)
    wallet = ledger.WalletState.of(row)
    tiers = {t["code"]: t for t in row["tiers"] or []}
    ladder = tier_rules.Ladder.of_rows(tiers.values())
    lifetime, trailing = wallet.lifetime_points, int(row["trailing"])
    ahead = tier_rules.progress(ladder, wallet.tier, lifetime=lifetime, trailing=trailing)
    current = tiers[wallet.tier]
    upcoming = ahead.next_tier
    grace = timedelta(days=settings.tier_downgrade_grace_days)
    since = row["downgrade_pending_since"]
    expiring = await ledger.next_expiring(conn, wallet.wallet_id)
    return WalletOut(
        **BalanceOut.of(wallet).model_dump(),
        wallet_id=wallet.wallet_id,
        next_expiry=NextExpiryOut(points=expiring.points, expires_at=expiring.expires_at)
        if expiring is not None
        else None,
        pending_points=int(row["pending_points"]),
        debt_points=int(row["debt_points"]),
        tier_details=TierDetailsOut(
            code=current["code"],
            name=current["name"],
            rank=current["rank"],
            earn_multiplier_pct=current["earn_multiplier_pct"],
        ),
        next_tier=NextTierOut(
            code=upcoming.code,
            name=tiers[upcoming.code]["name"],
            threshold=upcoming.threshold,
            basis=upcoming.basis,
            basis_points=ahead.basis_points,
            points_to_go=ahead.points_to_next,
        )
        if upcoming is not None
        else None,
        tier_status=TierStatusOut(
            tier=wallet.tier,
            basis=current["basis"],
            lifetime_points=lifetime,
            trailing_12m_points=trailing,
            next_tier=upcoming.code if upcoming else None,
            next_tier_basis=upcoming.basis if upcoming else None,
            points_to_next_tier=ahead.points_to_next,
            next_evaluation_at=tier_rules.next_evaluation_at(
                row["as_of"], settings.tier_evaluation_time, settings.tier_evaluation_timezone
            ),
            pending_downgrade=PendingDowngradeOut(
                to_tier=row["downgrade_to"], since=since, effective_at=since + grace
            )
            if since is not None
            else None,
        ),
        created_at=wallet.created_at,
        updated_at=wallet.updated_at,
    )


async def enrol(conn: AsyncConnection, user_id: str, settings: Settings) -> tuple[WalletOut, bool]:
    """Open the user's wallet on the lowest tier unless it exists (the way a first earn opens
    it); the wallet, and whether this call opened it."""
    _, opened = await open_for_enrolment(conn, user_id)
    return await wallet_view(conn, user_id, settings), opened


async def transaction_page(
    conn: AsyncConnection, user_id: str, query: TransactionQuery
) -> TransactionPage:
    wallet = await ledger.get_wallet(conn, user_id)
    before = TRANSACTIONS.decode_id(query.cursor) if query.cursor is not None else None
    # One row more than asked tells whether another page exists, so the last page says null.
    rows = await ledger.list_transactions(
        conn,
        wallet.wallet_id,
        limit=query.limit + 1,
        before_tx_id=before,
        types=query.type or None,
        since=query.since,
        until=query.until,
        booking_id=query.booking_id,
    )
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return TransactionPage(
        items=[ValuedTransactionOut.model_validate(p) for p in page],
        next_cursor=TRANSACTIONS.encode(page[-1].tx_id) if more else None,
    )


async def adjust(
    conn: AsyncConnection, user_id: str, body: AdjustmentIn, *, idempotency_key: str, actor: str
) -> PostingOut:
    result = await ledger.adjust(
        conn,
        user_id=user_id,
        points=body.points,
        reason=body.reason,
        idempotency_key=f"adjustment:{idempotency_key}",
        actor=actor,
        validity_months=body.validity_months,
    )
    return PostingOut(
        transaction=TransactionOut.model_validate(result.posting),
        wallet=BalanceOut.of(result.wallet),
        replayed=result.replayed,
    )
