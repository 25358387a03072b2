"""Wallet use cases behind the HTTP endpoints: each takes the request's connection (inside the
transaction owned by api.deps), goes through loyalty.ledger for every write, and returns the
response model. Nothing here commits.

Earn on payment lives in loyalty.accrual (one path for this API and the booking events).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import accrual, ledger, rules, tier_store
from loyalty.core.errors import ValidationFailed
from loyalty.schemas import (
    AdjustmentIn,
    BalanceOut,
    NextTierOut,
    PostingOut,
    TierOut,
    TransactionOut,
    TransactionPage,
    TransactionQuery,
    WalletOut,
)

_CURSOR_PREFIX = "tx:"


def encode_cursor(tx_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{tx_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_CURSOR_PREFIX):
            raise ValueError(raw)
        tx_id = int(raw.removeprefix(_CURSOR_PREFIX))
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationFailed("the cursor is not one this API returned", cursor=cursor) from exc
    if tx_id <= 0:
        raise ValidationFailed("the cursor is not one this API returned", cursor=cursor)
    return tx_id


def _balance(wallet: ledger.WalletState) -> BalanceOut:
    return BalanceOut(
        user_id=wallet.user_id,
        balance=wallet.balance,
        held=wallet.held,
        available=wallet.available,
        tier=wallet.tier,
        lifetime_points=wallet.lifetime_points,
    )


async def _tiers(conn: AsyncConnection) -> list[rules.Tier]:
    rows = (
        await conn.execute(
            text(
                "SELECT code, name, rank, threshold, basis, earn_multiplier_pct "
                "FROM loyalty_tiers ORDER BY rank"
            )
        )
    ).mappings()
    return [rules.Tier(**row) for row in rows]


async def _basis_points(conn: AsyncConnection, wallet: ledger.WalletState, basis: str) -> int:
    """The points that count towards a threshold: the same window tier evaluation uses."""
    if basis == "lifetime":
        return wallet.lifetime_points
    return await tier_store.trailing_points(conn, wallet.wallet_id, datetime.now(UTC))


async def wallet_view(conn: AsyncConnection, user_id: str) -> WalletOut:
    wallet = await ledger.get_wallet(conn, user_id)
    tiers = await _tiers(conn)
    current = next(t for t in tiers if t.code == wallet.tier)
    upcoming = rules.next_tier(tiers, wallet.tier)
    next_tier = None
    if upcoming is not None:
        basis_points = await _basis_points(conn, wallet, upcoming.basis)
        next_tier = NextTierOut(
            code=upcoming.code,
            name=upcoming.name,
            threshold=upcoming.threshold,
            basis=upcoming.basis,
            basis_points=basis_points,
            points_to_go=rules.points_to_threshold(upcoming.threshold, basis_points),
        )
    extra = await accrual.pending_and_debt(conn, user_id)
    return WalletOut(
        **_balance(wallet).model_dump(),
        wallet_id=wallet.wallet_id,
        pending_points=extra.pending_points,
        debt_points=extra.debt_points,
        tier_details=TierOut(
            code=current.code,
            name=current.name,
            rank=current.rank,
            earn_multiplier_pct=current.earn_multiplier_pct,
        ),
        next_tier=next_tier,
        created_at=wallet.created_at,
        updated_at=wallet.updated_at,
    )


async def transaction_page(
    conn: AsyncConnection, user_id: str, query: TransactionQuery
) -> TransactionPage:
    wallet = await ledger.get_wallet(conn, user_id)
    before = decode_cursor(query.cursor) if query.cursor is not None else None
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
        items=[TransactionOut.model_validate(p) for p in page],
        next_cursor=encode_cursor(page[-1].tx_id) if more else None,
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
    )
    return PostingOut(
        transaction=TransactionOut.model_validate(result.posting),
        wallet=_balance(result.wallet),
        replayed=result.replayed,
    )
