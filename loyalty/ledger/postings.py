"""Postings that move the balance: earn, adjust, burn, refund, clawback, expire.

Each is one call of its PostgreSQL function (migration 0007, which holds the protocol: the
idempotency key with its request hash, the guard on available points), so one round trip, and
atomic on its own: outside a transaction (`loyalty.core.db.autocommit`) it commits by itself,
inside one it commits or rolls back with the rest. What the caller asked for is fingerprinted
here (request_hash): the same key with the same request replays the original posting, with
another request it is refused (IdempotencyConflict). How many points to post is the caller's
business; these functions only move them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.hashing import request_hash
from loyalty.ledger.calls import Alongside, call, check_points, posting_result
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
) -> PostingResult:
    """Credit earned points (opening the wallet on its first earn); lifetime points grow too.
    `alongside`: the caller's bookkeeping, written in the earn's own statement."""
    check_points(points)
    request = {
        "type": "earn",
        "user_id": user_id,
        "points": points,
        "booking_id": booking_id,
        "payment_id": payment_id,
        "currency_amount": currency_amount,
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
) -> PostingResult:
    """An admin's signed correction with its reason; a debit never takes available below zero."""
    check_points(points, signed=True)
    request = {"type": "adjustment", "user_id": user_id, "points": points, "reason": reason}
    row = await call(
        conn,
        "ledger_adjust",
        user_id=user_id,
        points=points,
        reason=reason,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        actor=actor,
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


async def expire(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    idempotency_key: str,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Points that expired unspent, posted to the breakage account (never below zero)."""
    check_points(points)
    request = {"type": "expire", "user_id": user_id, "points": points}
    row = await call(
        conn,
        "ledger_expire",
        user_id=user_id,
        points=points,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        description=description,
        metadata=metadata,
    )
    return posting_result(row)
