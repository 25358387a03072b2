"""The ledger: the one module every writer of points goes through.

Posting protocol (one database transaction, owned by the caller):
1. insert the transaction row with ON CONFLICT (idempotency_key) DO NOTHING; when the key exists,
   the stored request hash tells a true replay (return the original) from a conflicting reuse;
2. move the wallet with one conditional UPDATE (`... WHERE balance + amount - held - held_delta
   >= 0`); zero rows means not enough points.
earn, adjust, burn and clawback do both (and the wallet lookup) in one statement when the
wallet exists and the key is new, the hot path: one round trip instead of three
(bench/ledger.py measured it).

Functions here take an AsyncConnection inside a transaction and never commit. When one raises a
LoyaltyError the caller must roll back (`loyalty.core.db.begin` and `engine.begin()` do): a failed
step may have written part of the posting.

Holds are two-phase: `hold` reserves points, then exactly one of `capture` (posted as a burn)
or `release` resolves it. The hold row is locked first, and a partial unique index allows one
resolving row per hold, so racing capture / release / expiry cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core import db
from loyalty.core.errors import (
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    NotFound,
    RefundExceedsSpending,
    ValidationFailed,
    WalletNotFound,
)

MAX_POINTS = 10**12  # far above any real balance; rejects overflow-sized requests

TX_TYPES = (
    "earn",
    "burn",
    "refund",
    "adjustment",
    "hold",
    "capture",
    "release",
    "expire",
    "clawback",
)


@dataclass(frozen=True)
class WalletState:
    wallet_id: uuid.UUID
    user_id: str
    balance: int
    held: int
    tier: str
    lifetime_points: int
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True)
class Posting:
    tx_id: int
    wallet_id: uuid.UUID
    type: str
    amount: int
    held_delta: int
    currency_amount: int | None
    currency: str | None
    counter_account: str
    booking_id: str | None
    payment_id: str | None
    hold_id: uuid.UUID | None
    reverses_tx_id: int | None
    idempotency_key: str
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class PostingResult:
    posting: Posting
    wallet: WalletState
    replayed: bool  # True when the idempotency key had already been posted with this request


@dataclass(frozen=True)
class HoldState:
    hold_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    booking_id: str | None
    status: str
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None


_WALLET_COLUMNS = (
    "wallet_id, user_id, balance, held, tier, lifetime_points, version, created_at, updated_at"
)
_TX_COLUMNS = (
    "tx_id, wallet_id, type, amount, held_delta, currency_amount, currency, counter_account, "
    "booking_id, payment_id, hold_id, reverses_tx_id, idempotency_key, description, metadata, "
    "created_at"
)


def _wallet(row: Mapping[Any, Any]) -> WalletState:
    return WalletState(**{k: row[k] for k in WalletState.__dataclass_fields__})


def _posting(row: Mapping[Any, Any]) -> Posting:
    return Posting(**{k: row[k] for k in Posting.__dataclass_fields__})


def _hold(row: RowMapping) -> HoldState:
    return HoldState(**{k: row[k] for k in HoldState.__dataclass_fields__})


async def _first(
    conn: AsyncConnection, sql: TextClause, params: Mapping[str, Any]
) -> RowMapping | None:
    return (await conn.execute(sql, params)).mappings().first()


async def _one(conn: AsyncConnection, sql: TextClause, params: Mapping[str, Any]) -> RowMapping:
    return (await conn.execute(sql, params)).mappings().one()


async def _all(
    conn: AsyncConnection, sql: TextClause, params: Mapping[str, Any]
) -> list[RowMapping]:
    return list((await conn.execute(sql, params)).mappings().all())


def request_hash(request: Mapping[str, Any]) -> str:
    """Stable hash of what the caller asked for, to tell a replay from a conflicting key reuse."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_points(points: int, *, allow_negative: bool = False) -> None:
    # bool is an int subclass; a caller passing True means a bug, not one point.
    if not isinstance(points, int) or isinstance(points, bool):
        raise ValidationFailed("points must be an integer", points=repr(points))
    if points == 0 or (points < 0 and not allow_negative):
        raise ValidationFailed(
            "points must be positive" if not allow_negative else "points must not be zero",
            points=points,
        )
    if abs(points) > MAX_POINTS:
        raise ValidationFailed(f"points must be at most {MAX_POINTS}", points=points)


def _check_key(key: str) -> None:
    if not key or len(key) > 255:
        raise ValidationFailed("idempotency key must be 1 to 255 characters")


# --- wallets ---------------------------------------------------------------------------------


async def find_wallet(conn: AsyncConnection, user_id: str) -> WalletState | None:
    row = await _first(
        conn, text(f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE user_id = :u"), {"u": user_id}
    )
    return _wallet(row) if row else None


async def get_wallet(conn: AsyncConnection, user_id: str) -> WalletState:
    wallet = await find_wallet(conn, user_id)
    if wallet is None:
        raise WalletNotFound(f"no wallet for user {user_id!r}", user_id=user_id)
    return wallet


async def open_wallet(conn: AsyncConnection, user_id: str) -> WalletState:
    """The user's wallet, created (on the entry tier) if it does not exist yet."""
    wallet = await find_wallet(conn, user_id)
    if wallet is not None:
        return wallet
    if not user_id or len(user_id) > 128:
        raise ValidationFailed("user id must be 1 to 128 characters")
    await conn.execute(
        text(
            "INSERT INTO wallets (user_id, tier) "
            "VALUES (:u, (SELECT code FROM loyalty_tiers ORDER BY rank LIMIT 1)) "
            "ON CONFLICT (user_id) DO NOTHING"
        ),
        {"u": user_id},
    )
    return await get_wallet(conn, user_id)


# --- posting ---------------------------------------------------------------------------------


async def _insert_or_replay(
    conn: AsyncConnection,
    *,
    wallet_id: uuid.UUID,
    tx_type: str,
    amount: int,
    held_delta: int,
    counter_account: str,
    idempotency_key: str,
    request: Mapping[str, Any],
    booking_id: str | None = None,
    payment_id: str | None = None,
    hold_id: uuid.UUID | None = None,
    reverses_tx_id: int | None = None,
    currency_amount: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[Posting, bool]:
    """Insert the transaction row, or return the row already posted under this key."""
    _check_key(idempotency_key)
    digest = request_hash(request)
    row = await _first(
        conn,
        text(
            "INSERT INTO wallet_transactions (wallet_id, type, amount, held_delta, "
            "currency_amount, currency, counter_account, booking_id, payment_id, hold_id, "
            "reverses_tx_id, idempotency_key, request_hash, description, metadata) "
            "VALUES (:wallet_id, :type, :amount, :held_delta, :currency_amount, :currency, "
            ":counter_account, :booking_id, :payment_id, :hold_id, :reverses, :key, :hash, "
            ":description, CAST(:metadata AS jsonb)) "
            f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_TX_COLUMNS}"
        ),
        {
            "wallet_id": wallet_id,
            "type": tx_type,
            "amount": amount,
            "held_delta": held_delta,
            "currency_amount": currency_amount,
            "currency": currency,
            "counter_account": counter_account,
            "booking_id": booking_id,
            "payment_id": payment_id,
            "hold_id": hold_id,
            "reverses": reverses_tx_id,
            "key": idempotency_key,
            "hash": digest,
            "description": description,
            "metadata": json.dumps(dict(metadata or {}), default=str),
        },
    )
    if row is not None:
        return _posting(row), False
    existing = await _one(
        conn,
        text(
            f"SELECT {_TX_COLUMNS}, request_hash FROM wallet_transactions "
            "WHERE idempotency_key = :key"
        ),
        {"key": idempotency_key},
    )
    if existing["request_hash"] != digest:
        raise IdempotencyConflict(
            "this idempotency key was already used for a different request",
            idempotency_key=idempotency_key,
        )
    return _posting(existing), True


async def _move_wallet(
    conn: AsyncConnection,
    wallet_id: uuid.UUID,
    *,
    amount: int,
    held_delta: int,
    lifetime_delta: int = 0,
) -> WalletState:
    row = await _first(
        conn,
        text(
            "UPDATE wallets SET balance = balance + :amount, held = held + :held_delta, "
            "lifetime_points = lifetime_points + :lifetime_delta, version = version + 1, "
            "updated_at = now() "
            "WHERE wallet_id = :w AND balance + :amount - held - :held_delta >= 0 "
            f"RETURNING {_WALLET_COLUMNS}"
        ),
        {
            "w": wallet_id,
            "amount": amount,
            "held_delta": held_delta,
            "lifetime_delta": lifetime_delta,
        },
    )
    if row is None:
        raise await _insufficient(conn, wallet_id, amount=amount, held_delta=held_delta)
    return _wallet(row)


async def _insufficient(
    conn: AsyncConnection, wallet_id: uuid.UUID, *, amount: int, held_delta: int
) -> InsufficientPoints:
    available = (
        await conn.execute(
            text("SELECT balance - held FROM wallets WHERE wallet_id = :w"), {"w": wallet_id}
        )
    ).scalar_one()
    return InsufficientPoints(
        f"not enough points: {available} available, {-(amount - held_delta)} needed",
        available=available,
        requested=-(amount - held_delta),
    )


_WALLET_RETURNING = ", ".join(
    f"wallets.{c} AS wallet_{c}" for c in WalletState.__dataclass_fields__
)


def _wallet_of(row: Mapping[str, Any]) -> WalletState:
    """The wallet columns of a one-statement posting's row (prefixed `wallet_`)."""
    return WalletState(**{k: row[f"wallet_{k}"] for k in WalletState.__dataclass_fields__})


# The common case of a posting by user id (the wallet exists, the key is new) in one statement:
# find the wallet, insert the row, move the wallet. Any other case returns no row, and the caller
# takes the step-by-step path, which tells a missing wallet, a replay and a conflicting key apart.
_POST_BY_USER = db.Statement.of(
    "WITH target AS (SELECT wallet_id FROM wallets WHERE user_id = :user_id), "
    "posted AS (INSERT INTO wallet_transactions (wallet_id, type, amount, held_delta, "
    "currency_amount, currency, counter_account, booking_id, payment_id, reverses_tx_id, "
    "idempotency_key, request_hash, description, metadata) "
    "SELECT wallet_id, :type, :amount, 0, :currency_amount, :currency, :counter_account, "
    ":booking_id, :payment_id, :reverses, :key, :hash, :description, CAST(:metadata AS jsonb) "
    "FROM target "
    f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_TX_COLUMNS}), "
    "moved AS (UPDATE wallets SET balance = balance + posted.amount, "
    "lifetime_points = lifetime_points + :lifetime_delta, version = version + 1, "
    "updated_at = now() FROM posted "
    "WHERE wallets.wallet_id = posted.wallet_id AND balance + posted.amount - held >= 0 "
    f"RETURNING {_WALLET_RETURNING}) SELECT * FROM posted LEFT JOIN moved ON true"
)


async def _post_to_user(
    conn: AsyncConnection,
    *,
    user_id: str,
    open_if_missing: bool,
    tx_type: str,
    amount: int,
    counter_account: str,
    idempotency_key: str,
    request: Mapping[str, Any],
    lifetime_delta: int = 0,
    booking_id: str | None = None,
    payment_id: str | None = None,
    reverses_tx_id: int | None = None,
    currency_amount: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Post a change of the balance (no hold) to the user's wallet: in one round trip when the
    wallet exists and the key is new, else step by step (missing wallet, replay, conflict)."""
    _check_key(idempotency_key)
    fields: dict[str, Any] = {
        "booking_id": booking_id,
        "payment_id": payment_id,
        "currency_amount": currency_amount,
        "currency": currency,
        "description": description,
    }
    row = await db.fetchrow(
        conn,
        _POST_BY_USER,
        {
            **fields,
            "user_id": user_id,
            "type": tx_type,
            "amount": amount,
            "lifetime_delta": lifetime_delta,
            "counter_account": counter_account,
            "reverses": reverses_tx_id,
            "key": idempotency_key,
            "hash": request_hash(request),
            "metadata": json.dumps(dict(metadata or {}), default=str),
        },
    )
    if row is not None:
        posting = _posting(row)
        if row["wallet_wallet_id"] is None:  # inserted, but the wallet cannot cover it
            raise await _insufficient(conn, posting.wallet_id, amount=amount, held_delta=0)
        return PostingResult(posting, _wallet_of(row), False)

    wallet = await (open_wallet if open_if_missing else get_wallet)(conn, user_id)
    posting, replayed = await _insert_or_replay(
        conn,
        wallet_id=wallet.wallet_id,
        tx_type=tx_type,
        amount=amount,
        held_delta=0,
        counter_account=counter_account,
        idempotency_key=idempotency_key,
        request=request,
        reverses_tx_id=reverses_tx_id,
        metadata=metadata,
        **fields,
    )
    if replayed:
        return PostingResult(posting, await _wallet_by_id(conn, wallet.wallet_id), True)
    wallet = await _move_wallet(
        conn, wallet.wallet_id, amount=amount, held_delta=0, lifetime_delta=lifetime_delta
    )
    return PostingResult(posting, wallet, False)


async def _wallet_by_id(conn: AsyncConnection, wallet_id: uuid.UUID) -> WalletState:
    row = await _one(
        conn,
        text(f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE wallet_id = :w"),
        {"w": wallet_id},
    )
    return _wallet(row)


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
) -> PostingResult:
    """Credit earned points (creating the wallet on first earn)."""
    _check_points(points)
    request = {
        "type": "earn",
        "user_id": user_id,
        "points": points,
        "booking_id": booking_id,
        "payment_id": payment_id,
        "currency_amount": currency_amount,
    }
    return await _post_to_user(
        conn,
        user_id=user_id,
        open_if_missing=True,
        tx_type="earn",
        amount=points,
        lifetime_delta=points,
        counter_account=counter_account,
        idempotency_key=idempotency_key,
        request=request,
        booking_id=booking_id,
        payment_id=payment_id,
        currency_amount=currency_amount,
        currency=currency,
        description=description,
        metadata=metadata,
    )


async def adjust(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    reason: str,
    idempotency_key: str,
    actor: str | None = None,
) -> PostingResult:
    """Admin adjustment (signed). A debit can never take available points below zero."""
    _check_points(points, allow_negative=True)
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required for an adjustment")
    request = {"type": "adjustment", "user_id": user_id, "points": points, "reason": reason}
    return await _post_to_user(
        conn,
        user_id=user_id,
        open_if_missing=False,
        tx_type="adjustment",
        amount=points,
        counter_account="adjustment",
        idempotency_key=idempotency_key,
        request=request,
        description=reason,
        metadata={"actor": actor} if actor else None,
    )


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
    """Spend points at once (no hold), e.g. a voucher bought with points."""
    _check_points(points)
    request = {
        "type": "burn",
        "user_id": user_id,
        "points": points,
        "booking_id": booking_id,
        "counter_account": counter_account,
    }
    return await _post_to_user(
        conn,
        user_id=user_id,
        open_if_missing=False,
        tx_type="burn",
        amount=-points,
        counter_account=counter_account,
        idempotency_key=idempotency_key,
        request=request,
        booking_id=booking_id,
        currency_amount=currency_amount,
        currency=currency,
        description=description,
        metadata=metadata,
    )


async def refund(
    conn: AsyncConnection,
    *,
    reverses_tx_id: int,
    points: int,
    idempotency_key: str,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Give back points spent by a burn or capture, in full or in part. All refunds of one
    spending together never exceed it."""
    _check_points(points)
    original = await _first(
        conn,
        text(f"SELECT {_TX_COLUMNS} FROM wallet_transactions WHERE tx_id = :t"),
        {"t": reverses_tx_id},
    )
    if original is None or original["type"] not in ("burn", "capture"):
        raise NotFound(f"no burn or capture with tx id {reverses_tx_id}", tx_id=reverses_tx_id)
    spent = _posting(original)
    # Every posting of a wallet updates its row, so this lock orders refunds of one spending.
    await conn.execute(
        text("SELECT 1 FROM wallets WHERE wallet_id = :w FOR UPDATE"), {"w": spent.wallet_id}
    )
    request = {"type": "refund", "reverses_tx_id": reverses_tx_id, "points": points}
    posting, replayed = await _insert_or_replay(
        conn,
        wallet_id=spent.wallet_id,
        tx_type="refund",
        amount=points,
        held_delta=0,
        counter_account=spent.counter_account,
        idempotency_key=idempotency_key,
        request=request,
        booking_id=spent.booking_id,
        reverses_tx_id=reverses_tx_id,
        currency=spent.currency,
        description=description,
        metadata=metadata,
    )
    if replayed:
        return PostingResult(posting, await _wallet_by_id(conn, spent.wallet_id), True)
    refunded = (
        await conn.execute(
            text(
                "SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions "
                "WHERE reverses_tx_id = :t AND type = 'refund'"
            ),
            {"t": reverses_tx_id},
        )
    ).scalar_one()
    if refunded > -spent.amount:
        raise RefundExceedsSpending(
            f"refunds would total {refunded} points but only {-spent.amount} were spent",
            spent=-spent.amount,
            refunded=refunded - points,
            requested=points,
        )
    wallet = await _move_wallet(conn, spent.wallet_id, amount=points, held_delta=0)
    return PostingResult(posting, wallet, False)


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
) -> PostingResult:
    """Take back earned points (a refunded booking). Like any debit it cannot take available
    points below zero: the caller decides what to do with a shortfall (loyalty.accrual records
    it as a debt). Lifetime points stay: they count every point ever earned."""
    _check_points(points)
    request = {
        "type": "clawback",
        "user_id": user_id,
        "points": points,
        "reverses_tx_id": reverses_tx_id,
        "booking_id": booking_id,
    }
    return await _post_to_user(
        conn,
        user_id=user_id,
        open_if_missing=False,
        tx_type="clawback",
        amount=-points,
        counter_account=counter_account,
        idempotency_key=idempotency_key,
        request=request,
        booking_id=booking_id,
        reverses_tx_id=reverses_tx_id,
        description=description,
        metadata=metadata,
    )


_HOLD_COLUMNS = tuple(HoldState.__dataclass_fields__)

# The common case of a hold (the wallet exists, the hold id and the key are new) in one statement:
# place the hold, post it, move the wallet. Any other case returns no row, and the caller takes
# the step-by-step path, which tells a missing wallet, a replay and a conflicting key apart.
_HOLD_BY_USER = db.Statement.of(
    "WITH target AS (SELECT wallet_id FROM wallets WHERE user_id = :user_id), "
    "placed AS (INSERT INTO holds (hold_id, wallet_id, amount, booking_id, expires_at) "
    "SELECT :hold_id, wallet_id, :points, :booking_id, :expires_at FROM target "
    f"ON CONFLICT (hold_id) DO NOTHING RETURNING {', '.join(_HOLD_COLUMNS)}), "
    "posted AS (INSERT INTO wallet_transactions (wallet_id, type, amount, held_delta, "
    "counter_account, booking_id, hold_id, idempotency_key, request_hash, description, metadata) "
    "SELECT wallet_id, 'hold', 0, amount, 'redemption', booking_id, hold_id, :key, :hash, "
    "CAST(:description AS text), CAST(:metadata AS jsonb) FROM placed "
    f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_TX_COLUMNS}), "
    "moved AS (UPDATE wallets SET held = held + posted.held_delta, version = version + 1, "
    "updated_at = now() FROM posted "
    "WHERE wallets.wallet_id = posted.wallet_id AND balance - held - posted.held_delta >= 0 "
    f"RETURNING {_WALLET_RETURNING}) "
    "SELECT posted.*, "
    + ", ".join(f"placed.{c} AS hold_{c}" for c in _HOLD_COLUMNS)
    + ", moved.* FROM posted CROSS JOIN placed LEFT JOIN moved ON true"
)


async def hold(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    idempotency_key: str,
    expires_at: datetime,
    booking_id: str | None = None,
    hold_id: uuid.UUID | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[HoldState, PostingResult]:
    """Reserve points: they stay in the balance but are no longer available. One round trip
    when the wallet exists and the hold is new, else step by step."""
    _check_points(points)
    _check_key(idempotency_key)
    hold_id = hold_id or uuid.uuid5(uuid.NAMESPACE_URL, f"loyalty-hold:{idempotency_key}")
    request = {"type": "hold", "user_id": user_id, "points": points, "booking_id": booking_id}
    row = await db.fetchrow(
        conn,
        _HOLD_BY_USER,
        {
            "user_id": user_id,
            "hold_id": hold_id,
            "points": points,
            "booking_id": booking_id,
            "expires_at": expires_at,
            "key": idempotency_key,
            "hash": request_hash(request),
            "description": description,
            "metadata": json.dumps(dict(metadata or {}), default=str),
        },
    )
    if row is not None:
        posting = _posting(row)
        if row["wallet_wallet_id"] is None:  # placed, but the wallet cannot cover it
            raise await _insufficient(conn, posting.wallet_id, amount=0, held_delta=points)
        the_hold = HoldState(**{k: row[f"hold_{k}"] for k in _HOLD_COLUMNS})
        return the_hold, PostingResult(posting, _wallet_of(row), False)

    wallet = await get_wallet(conn, user_id)
    await conn.execute(
        text(
            "INSERT INTO holds (hold_id, wallet_id, amount, booking_id, expires_at) "
            "VALUES (:h, :w, :amount, :booking_id, :expires_at) "
            "ON CONFLICT (hold_id) DO NOTHING"
        ),
        {
            "h": hold_id,
            "w": wallet.wallet_id,
            "amount": points,
            "booking_id": booking_id,
            "expires_at": expires_at,
        },
    )
    posting, replayed = await _insert_or_replay(
        conn,
        wallet_id=wallet.wallet_id,
        tx_type="hold",
        amount=0,
        held_delta=points,
        counter_account="redemption",
        idempotency_key=idempotency_key,
        request=request,
        booking_id=booking_id,
        hold_id=hold_id,
        description=description,
        metadata=metadata,
    )
    if replayed:
        if posting.hold_id is None:
            raise IdempotencyConflict("this idempotency key was used for a different posting")
        return (
            await get_hold(conn, posting.hold_id),
            PostingResult(posting, await _wallet_by_id(conn, wallet.wallet_id), True),
        )
    wallet = await _move_wallet(conn, wallet.wallet_id, amount=0, held_delta=points)
    return await get_hold(conn, hold_id), PostingResult(posting, wallet, False)


async def get_hold(conn: AsyncConnection, hold_id: uuid.UUID) -> HoldState:
    row = await _first(conn, text("SELECT * FROM holds WHERE hold_id = :h"), {"h": hold_id})
    if row is None:
        raise NotFound(f"no hold {hold_id}", hold_id=str(hold_id))
    return _hold(row)


# The common case of a capture or release (the hold is open, the key is new) in one statement:
# lock the hold, post the resolution, close the hold, move the wallet. Any other case returns no
# row (a hold resolved meanwhile fails the `open` check once its lock is released), and the
# caller takes the step-by-step path, which tells a replay from a hold that is not open.
_RESOLVE_OPEN_HOLD = db.Statement.of(
    "WITH h AS (SELECT hold_id, wallet_id, amount, booking_id FROM holds "
    "WHERE hold_id = :hold_id AND status = 'open' FOR UPDATE), "
    "posted AS (INSERT INTO wallet_transactions (wallet_id, type, amount, held_delta, "
    "currency_amount, currency, counter_account, booking_id, hold_id, idempotency_key, "
    "request_hash, description, metadata) "
    "SELECT wallet_id, CAST(:type AS text), CASE WHEN :spend THEN -amount ELSE 0 END, -amount, "
    "CAST(:currency_amount AS bigint), CAST(:currency AS text), 'redemption', booking_id, "
    "hold_id, :key, :hash, CAST(:description AS text), CAST(:metadata AS jsonb) FROM h "
    f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_TX_COLUMNS}), "
    "closed AS (UPDATE holds SET status = :outcome, resolved_at = now() FROM posted "
    "WHERE holds.hold_id = posted.hold_id), "
    "moved AS (UPDATE wallets SET balance = balance + posted.amount, "
    "held = held + posted.held_delta, version = version + 1, updated_at = now() FROM posted "
    "WHERE wallets.wallet_id = posted.wallet_id "
    "AND balance + posted.amount - held - posted.held_delta >= 0 "
    f"RETURNING {_WALLET_RETURNING}) "
    "SELECT * FROM posted LEFT JOIN moved ON true"
)


async def _resolve_hold(
    conn: AsyncConnection,
    *,
    hold_id: uuid.UUID,
    outcome: str,
    idempotency_key: str,
    currency_amount: int | None,
    currency: str | None,
    description: str | None,
    metadata: Mapping[str, Any] | None,
) -> PostingResult:
    _check_key(idempotency_key)
    tx_type = "capture" if outcome == "captured" else "release"
    request = {"type": tx_type, "hold_id": str(hold_id)}
    fast = await db.fetchrow(
        conn,
        _RESOLVE_OPEN_HOLD,
        {
            "hold_id": hold_id,
            "type": tx_type,
            "spend": tx_type == "capture",
            "currency_amount": currency_amount,
            "currency": currency,
            "key": idempotency_key,
            "hash": request_hash(request),
            "description": description,
            "metadata": json.dumps(dict(metadata or {}), default=str),
            "outcome": outcome,
        },
    )
    if fast is not None:
        posting = _posting(fast)
        if fast["wallet_wallet_id"] is None:  # cannot happen while the invariants hold
            raise await _insufficient(
                conn, posting.wallet_id, amount=posting.amount, held_delta=posting.held_delta
            )
        return PostingResult(posting, _wallet_of(fast), False)

    row = await _first(
        conn, text("SELECT * FROM holds WHERE hold_id = :h FOR UPDATE"), {"h": hold_id}
    )
    if row is None:
        raise NotFound(f"no hold {hold_id}", hold_id=str(hold_id))
    the_hold = _hold(row)
    amount = -the_hold.amount if tx_type == "capture" else 0
    if the_hold.status != "open":
        existing = await _first(
            conn,
            text(
                f"SELECT {_TX_COLUMNS}, request_hash FROM wallet_transactions "
                "WHERE idempotency_key = :key"
            ),
            {"key": idempotency_key},
        )
        if existing is not None and existing["request_hash"] == request_hash(request):
            wallet = await _wallet_by_id(conn, the_hold.wallet_id)
            return PostingResult(_posting(existing), wallet, True)
        raise HoldNotOpen(
            f"hold {hold_id} is already {the_hold.status}",
            hold_id=str(hold_id),
            status=the_hold.status,
        )
    posting, replayed = await _insert_or_replay(
        conn,
        wallet_id=the_hold.wallet_id,
        tx_type=tx_type,
        amount=amount,
        held_delta=-the_hold.amount,
        counter_account="redemption",
        idempotency_key=idempotency_key,
        request=request,
        booking_id=the_hold.booking_id,
        hold_id=hold_id,
        currency_amount=currency_amount,
        currency=currency,
        description=description,
        metadata=metadata,
    )
    if replayed:  # the key names a posting of another hold (an open hold has no resolution)
        raise IdempotencyConflict("this idempotency key was already used for another posting")
    await conn.execute(
        text("UPDATE holds SET status = :s, resolved_at = now() WHERE hold_id = :h"),
        {"s": outcome, "h": hold_id},
    )
    wallet = await _move_wallet(
        conn, the_hold.wallet_id, amount=amount, held_delta=-the_hold.amount
    )
    return PostingResult(posting, wallet, False)


async def capture(
    conn: AsyncConnection,
    *,
    hold_id: uuid.UUID,
    idempotency_key: str,
    currency_amount: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Post the held points as spent (a burn against the redemption account)."""
    return await _resolve_hold(
        conn,
        hold_id=hold_id,
        outcome="captured",
        idempotency_key=idempotency_key,
        currency_amount=currency_amount,
        currency=currency,
        description=description,
        metadata=metadata,
    )


async def release(
    conn: AsyncConnection,
    *,
    hold_id: uuid.UUID,
    idempotency_key: str,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Void the hold: the points become available again."""
    return await _resolve_hold(
        conn,
        hold_id=hold_id,
        outcome="released",
        idempotency_key=idempotency_key,
        currency_amount=None,
        currency=None,
        description=description,
        metadata=metadata,
    )


# --- reading ---------------------------------------------------------------------------------


async def list_transactions(
    conn: AsyncConnection,
    wallet_id: uuid.UUID,
    *,
    limit: int,
    before_tx_id: int | None = None,
    types: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    booking_id: str | None = None,
) -> list[Posting]:
    """Newest first, keyset-paginated on tx_id: rows never repeat across pages, even while
    new rows are being inserted (new rows only appear on a fresh first page)."""
    clauses = ["wallet_id = :w"]
    params: dict[str, Any] = {"w": wallet_id, "limit": limit}
    if before_tx_id is not None:
        clauses.append("tx_id < :before")
        params["before"] = before_tx_id
    if types:
        clauses.append("type = ANY(:types)")
        params["types"] = list(types)
    if since is not None:
        clauses.append("created_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("created_at < :until")
        params["until"] = until
    if booking_id is not None:
        clauses.append("booking_id = :booking_id")
        params["booking_id"] = booking_id
    rows = await _all(
        conn,
        text(
            f"SELECT {_TX_COLUMNS} FROM wallet_transactions WHERE {' AND '.join(clauses)} "
            "ORDER BY tx_id DESC LIMIT :limit"
        ),
        params,
    )
    return [_posting(r) for r in rows]
