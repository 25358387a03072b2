"""Postings that move the balance: earn, adjust, burn, refund, clawback, expire_lot.

Each is one call of its PostgreSQL function (migration 0007, which holds the protocol: the
idempotency key with its request hash, the guard on available points), so one round trip, and
atomic on its own: outside a transaction (`loyalty.core.db.autocommit`) it commits by itself,
inside one it commits or rolls back with the rest. What the caller asked for is fingerprinted
here (request_hash): the same key with the same request replays the original posting, with
another request it is refused (IdempotencyConflict). How many points to post is the caller's
business; these functions only move them.

Every posting also moves point lots (migration 0012, loyalty.ledger.lots): a credit opens a lot
that expires after `validity_months` (a campaign's or an adjustment's own; 0 means never; None
means the POINTS_VALIDITY_MONTHS setting the engine carries), a debit draws from the lots that
expire first, a refund gives points back to the lots they came from."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import ValidationFailed
from loyalty.core.hashing import request_hash
from loyalty.ledger.calls import Alongside, call, call_optional, check_points, posting_result
from loyalty.ledger.types import PostingResult


async def earn(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    idempotency_key: str,
    booking_id: str | None = None,
    payment_id: str | None = None,
    currency_amount: int | None = None,
    currency: str | None = None,
    counter_account: str = "issuance:base",
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    alongside: Alongside | None = None,
    validity_months: int | None = None,
) -> PostingResult:
    """Credit earned points (opening the wallet on its first earn); lifetime points grow too.
    `alongside`: the caller's bookkeeping, written in the earn's own statement."""
    check_points(points)
    check_validity(validity_months)
    request = {
        "type": "earn",
        "user_id": user_id,
        "points": points,
        "booking_id": booking_id,
        "payment_id": payment_id,
        "currency_amount": currency_amount,
        **_validity(validity_months),
    }
    row = await call(
        conn,
        "ledger_earn",
        user_id=user_id,
        points=points,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        booking_id=booking_id,
        payment_id=payment_id,
        currency_amount=currency_amount,
        currency=currency,
        counter_account=counter_account,
        description=description,
        metadata=metadata,
        **_validity(validity_months),
        alongside=alongside,
    )
    return posting_result(row)


async def adjust(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    reason: str,
    idempotency_key: str,
    actor: str | None = None,
    validity_months: int | None = None,
) -> PostingResult:
    """An admin's signed correction with its reason; a debit never takes available below zero.
    A credit's lot expires after `validity_months` (0: never; None: the default)."""
    check_points(points, signed=True)
    check_validity(validity_months)
    request = {
        "type": "adjustment",
        "user_id": user_id,
        "points": points,
        "reason": reason,
        **_validity(validity_months),
    }
    row = await call(
        conn,
        "ledger_adjust",
        user_id=user_id,
        points=points,
        reason=reason,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        actor=actor,
        **_validity(validity_months),
    )
    return posting_result(row)


async def burn(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    idempotency_key: str,
    counter_account: str,
    booking_id: str | None = None,
    currency_amount: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Spend points at once, without a hold (a voucher bought with points)."""
    check_points(points)
    request = {
        "type": "burn",
        "user_id": user_id,
        "points": points,
        "booking_id": booking_id,
        "counter_account": counter_account,
    }
    row = await call(
        conn,
        "ledger_burn",
        user_id=user_id,
        points=points,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        counter_account=counter_account,
        booking_id=booking_id,
        currency_amount=currency_amount,
        currency=currency,
        description=description,
        metadata=metadata,
    )
    return posting_result(row)


async def refund(
    conn: AsyncConnection,
    *,
    reverses_tx_id: int,
    points: int,
    idempotency_key: str,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Give back points spent by a burn or capture, in full or in part; all refunds of one
    spending together never exceed it (RefundExceedsSpending)."""
    check_points(points)
    request = {"type": "refund", "reverses_tx_id": reverses_tx_id, "points": points}
    row = await call(
        conn,
        "ledger_refund",
        reverses_tx_id=reverses_tx_id,
        points=points,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        description=description,
        metadata=metadata,
    )
    return posting_result(row)


async def clawback(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    idempotency_key: str,
    reverses_tx_id: int | None = None,
    booking_id: str | None = None,
    counter_account: str = "issuance:clawback",
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    lifetime_points: int | None = None,
) -> PostingResult:
    """Take back earned points (a refunded booking, a debt repaid), and the tier credit they
    gave: lifetime points drop by `lifetime_points` (default: the points taken), never below
    zero. Like any debit it cannot take available points below zero: the caller decides what to
    do with a shortfall (loyalty.earning.refunds records it as a debt, and passes the points
    due as `lifetime_points`, so the tier credit goes at once). `points` may be 0 only when
    `lifetime_points` is positive: the customer spent everything the refund is due."""
    check_points(points)
    request: dict[str, Any] = {
        "type": "clawback",
        "user_id": user_id,
        "points": points,
        "reverses_tx_id": reverses_tx_id,
        "booking_id": booking_id,
    }
    params: dict[str, Any] = {}
    if lifetime_points is not None:  # left out otherwise: earlier requests keep their hash
        check_points(lifetime_points)
        request["lifetime_points"] = params["lifetime_points"] = lifetime_points
    row = await call(
        conn,
        "ledger_clawback",
        user_id=user_id,
        points=points,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        reverses_tx_id=reverses_tx_id,
        booking_id=booking_id,
        counter_account=counter_account,
        description=description,
        metadata=metadata,
        **params,
    )
    return posting_result(row)


async def expire_lot(
    conn: AsyncConnection,
    *,
    lot_id: int,
    as_of: datetime,
    description: str | None = None,
) -> PostingResult | None:
    """Expire what is left of a lot due at `as_of` to the breakage account, once per lot (the
    key is the lot's). None when there is nothing to expire: not due at `as_of`, or spent."""
    request = {"type": "expire", "lot_id": lot_id}
    row = await call_optional(
        conn,
        "ledger_expire_lot",
        lot_id=lot_id,
        as_of=as_of,
        idempotency_key=f"expire:lot:{lot_id}",
        request_hash=request_hash(request),
        description=description,
    )
    return None if row is None else posting_result(row)


MAX_VALIDITY_MONTHS = 1200


def check_validity(months: int | None) -> None:
    if months is None:
        return
    if not isinstance(months, int) or isinstance(months, bool):
        raise ValidationFailed("validity_months must be an integer", validity_months=repr(months))
    if not 0 <= months <= MAX_VALIDITY_MONTHS:
        raise ValidationFailed(
            f"validity_months must be 0 (never) to {MAX_VALIDITY_MONTHS}", validity_months=months
        )


def _validity(months: int | None) -> dict[str, Any]:
    # Passed only when set, so the request hash of a posting without it is what it always was.
    return {} if months is None else {"validity_months": months}
