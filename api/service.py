"""Wallet use cases behind the HTTP endpoints: each takes the request's connection (inside the
transaction owned by api.deps), goes through loyalty.ledger for every write, and returns the
response model. Nothing here commits.

Earn on payment: points = amount_paid * tier multiplier // (rate * 100) (loyalty.rules). The
idempotency key is `earn:{payment_id}` or, without a payment id, `earn:{booking_id}`. A replay is
recognised by the rule inputs stored on the posting (user, booking, payment, amount, currency),
not by the points, so a retry after a tier change still replays instead of conflicting. A payment
worth less than one point posts nothing (the ledger has no zero rows) and answers `points: 0,
posted: false`; the wallet is still opened, since the payer is now a member.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger, rules
from loyalty.errors import IdempotencyConflict, ValidationFailed
from loyalty.models import wallet_transactions, wallets
from loyalty.schemas import (
    AdjustmentIn,
    BalanceOut,
    EarnIn,
    EarnOut,
    EarnRuleOut,
    NextTierOut,
    PostingOut,
    TierOut,
    TransactionOut,
    TransactionPage,
    TransactionQuery,
    WalletOut,
)
from loyalty.settings import Settings

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
    if basis == "lifetime":
        return wallet.lifetime_points
    earned = (
        await conn.execute(
            text(
                "SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions "
                "WHERE wallet_id = :w AND type = 'earn' "
                "AND created_at >= now() - interval '12 months'"
            ),
            {"w": wallet.wallet_id},
        )
    ).scalar_one()
    return int(earned)


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
    return WalletOut(
        **_balance(wallet).model_dump(),
        wallet_id=wallet.wallet_id,
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


def earn_key(body: EarnIn) -> str:
    return f"earn:{body.payment_id}" if body.payment_id else f"earn:{body.booking_id}"


async def _earn_replay(
    conn: AsyncConnection, user_id: str, body: EarnIn, key: str
) -> EarnOut | None:
    """The answer already given for this key, None if it is new; 409 if it meant another earn."""
    row = (
        (
            await conn.execute(
                select(wallet_transactions, wallets.c.user_id)
                .join(wallets, wallets.c.wallet_id == wallet_transactions.c.wallet_id)
                .where(wallet_transactions.c.idempotency_key == key)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    same = (
        row["type"] == "earn"
        and row["user_id"] == user_id
        and row["booking_id"] == body.booking_id
        and row["payment_id"] == body.payment_id
        and row["currency_amount"] == body.amount_paid
        and row["currency"] == body.currency
    )
    if not same:
        raise IdempotencyConflict(
            "this booking or payment already earned points with a different request",
            idempotency_key=key,
        )
    posting = ledger.Posting(**{k: row[k] for k in ledger.Posting.__dataclass_fields__})
    meta: dict[str, Any] = posting.metadata
    return EarnOut(
        points=posting.amount,
        posted=True,
        replayed=True,
        idempotency_key=key,
        rule=EarnRuleOut(
            earn_rate_currency_per_point=meta["earn_rate_currency_per_point"],
            tier=meta["tier"],
            earn_multiplier_pct=meta["earn_multiplier_pct"],
        ),
        transaction=TransactionOut.model_validate(posting),
        wallet=_balance(await ledger.get_wallet(conn, user_id)),
    )


async def earn_on_payment(
    conn: AsyncConnection, user_id: str, body: EarnIn, settings: Settings
) -> EarnOut:
    if body.currency != settings.currency:
        raise ValidationFailed(
            f"amount_paid must be in {settings.currency}",
            currency=body.currency,
            expected=settings.currency,
        )
    key = earn_key(body)
    replay = await _earn_replay(conn, user_id, body, key)
    if replay is not None:
        return replay
    wallet = await ledger.open_wallet(conn, user_id)
    tier = next(t for t in await _tiers(conn) if t.code == wallet.tier)
    rule = EarnRuleOut(
        earn_rate_currency_per_point=settings.earn_rate_currency_per_point,
        tier=tier.code,
        earn_multiplier_pct=tier.earn_multiplier_pct,
    )
    points = rules.earn_points(
        body.amount_paid,
        earn_multiplier_pct=tier.earn_multiplier_pct,
        currency_per_point=settings.earn_rate_currency_per_point,
    )
    if points == 0:
        return EarnOut(
            points=0,
            posted=False,
            replayed=False,
            idempotency_key=key,
            rule=rule,
            transaction=None,
            wallet=_balance(wallet),
        )
    result = await ledger.earn(
        conn,
        user_id=user_id,
        points=points,
        idempotency_key=key,
        booking_id=body.booking_id,
        payment_id=body.payment_id,
        currency_amount=body.amount_paid,
        currency=body.currency,
        description=f"earned on booking {body.booking_id}",
        metadata={"rule": "base", **rule.model_dump(), "amount_paid": body.amount_paid},
    )
    return EarnOut(
        points=points,
        posted=True,
        replayed=result.replayed,
        idempotency_key=key,
        rule=rule,
        transaction=TransactionOut.model_validate(result.posting),
        wallet=_balance(result.wallet),
    )
