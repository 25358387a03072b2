"""Vouchers bought with points: reservation of inventory, issue of codes, the compensations of
a purchase that could not finish, and the customer's vouchers. (The catalog is in
loyalty.vouchers.catalog.)

A purchase (one client idempotency key of one customer) moves through `voucher_purchases`:
reserved -> paid (points burned) -> completed (voucher issued), or -> failed when it is undone.
Concurrency rests on conditional writes, never on read-then-write:
- inventory: `UPDATE voucher_products SET inventory_taken = inventory_taken + 1 WHERE ...
  inventory_taken < inventory_total`, so the last item is taken once however many buyers race;
- per-customer limit: a conditional upsert on the (product, customer) counter row, which
  serialises one customer's racing purchases of one product;
- the purchase row is locked first in every function that changes it, so a retried activity
  and a compensation never both act on it. Lock order everywhere: purchase, counter, product.

Functions take an AsyncConnection inside a transaction and never commit; a LoyaltyError means
roll back. Points move only through loyalty.ledger (the activities call it)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    NotFound,
    TierTooLow,
    ValidationFailed,
    VoucherLimitReached,
    VoucherNotAvailable,
    VoucherNotUsable,
    VoucherSoldOut,
    WalletNotFound,
)
from loyalty.vouchers import catalog as voucher_catalog
from loyalty.vouchers.schemas import (
    Reservation,
    ReserveVoucher,
    VoucherOut,
    VoucherStatus,
)

VOUCHER_SALES_ACCOUNT = "voucher_sales"

# Unambiguous alphabet (no 0/O, 1/I): 32 symbols, 16 of them = 80 bits from `secrets`.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16


# --- plain rules -----------------------------------------------------------------------------


def generate_code() -> str:
    """An unguessable voucher code such as `K7QM-2XWP-9HDA-Z4TC`."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def check_on_sale(product: Mapping[Any, Any], now: datetime) -> None:
    if not product["active"]:
        raise VoucherNotAvailable("this voucher is no longer sold", reason="inactive")
    if product["sale_starts_at"] is not None and now < product["sale_starts_at"]:
        raise VoucherNotAvailable(
            "this voucher is not on sale yet",
            reason="not_started",
            sale_starts_at=product["sale_starts_at"].isoformat(),
        )
    if product["sale_ends_at"] is not None and now >= product["sale_ends_at"]:
        raise VoucherNotAvailable(
            "this voucher is no longer on sale",
            reason="ended",
            sale_ends_at=product["sale_ends_at"].isoformat(),
        )


def check_tier(min_tier: str | None, min_rank: int | None, tier: str, rank: int) -> None:
    if min_tier is not None and min_rank is not None and rank < min_rank:
        raise TierTooLow(
            f"this voucher needs tier {min_tier} or higher; the wallet is {tier}",
            min_tier=min_tier,
            tier=tier,
        )


def voucher_expiry(
    issued_at: datetime, valid_days: int | None, valid_until: datetime | None
) -> datetime | None:
    """The earlier of `valid_days` after issue and `valid_until`; None if neither is set."""
    candidates = [valid_until] if valid_until is not None else []
    if valid_days is not None:
        candidates.append(issued_at + timedelta(days=valid_days))
    return min(candidates) if candidates else None


def shown_status(status: str, expires_at: datetime | None, now: datetime) -> VoucherStatus:
    """An active voucher past its expiry shows as expired (no sweeper has to run for that)."""
    if status == "active" and expires_at is not None and expires_at <= now:
        return "expired"
    return "used" if status == "used" else "expired" if status == "expired" else "active"


# --- purchase: reserve, pay, issue, undo ----------------------------------------------------

_PURCHASE_COLUMNS = (
    "purchase_id, user_id, idempotency_key, product_id, price_points, status, attempt, run_id, "
    "burn_tx_id, refund_tx_id"
)


async def _purchase(
    conn: AsyncConnection, purchase_id: uuid.UUID, *, lock: bool = True
) -> RowMapping:
    row = (
        (
            await conn.execute(
                text(
                    f"SELECT {_PURCHASE_COLUMNS} FROM voucher_purchases WHERE purchase_id = :p"
                    + (" FOR UPDATE" if lock else "")
                ),
                {"p": purchase_id},
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no voucher purchase {purchase_id}", purchase_id=str(purchase_id))
    return row


async def _take_items(
    conn: AsyncConnection, user_id: str, product: RowMapping, now: datetime
) -> None:
    """Check the rules and take one item and one of the customer's allowance, or refuse."""
    check_on_sale(product, now)
    wallet = (
        (
            await conn.execute(
                text(
                    "SELECT w.tier, w.balance - w.held AS available, t.rank, "
                    "(SELECT rank FROM loyalty_tiers WHERE code = :min_tier) AS min_rank "
                    "FROM wallets w JOIN loyalty_tiers t ON t.code = w.tier WHERE w.user_id = :u"
                ),
                {"u": user_id, "min_tier": product["min_tier"]},
            )
        )
        .mappings()
        .first()
    )
    if wallet is None:
        raise WalletNotFound(f"no wallet for user {user_id!r}", user_id=user_id)
    check_tier(product["min_tier"], wallet["min_rank"], wallet["tier"], wallet["rank"])
    # A first look, so a buyer who cannot pay does not hold an item while failing; the burn
    # remains the authority.
    if wallet["available"] < product["price_points"]:
        raise InsufficientPoints(
            f"not enough points: {wallet['available']} available, {product['price_points']} needed",
            available=wallet["available"],
            requested=product["price_points"],
        )
    counted = (
        await conn.execute(
            text(
                "INSERT INTO voucher_customer_counts AS c (product_id, user_id, taken) "
                "VALUES (:p, :u, 1) ON CONFLICT (product_id, user_id) DO UPDATE "
                "SET taken = c.taken + 1 "
                "WHERE CAST(:limit AS integer) IS NULL OR c.taken < CAST(:limit AS integer) "
                "RETURNING taken"
            ),
            {"p": product["product_id"], "u": user_id, "limit": product["per_customer_limit"]},
        )
    ).first()
    if counted is None:
        raise VoucherLimitReached(
            f"at most {product['per_customer_limit']} of this voucher per customer",
            limit=product["per_customer_limit"],
        )
    taken = (
        await conn.execute(
            text(
                "UPDATE voucher_products SET inventory_taken = inventory_taken + 1 "
                "WHERE product_id = :p AND active "
                "AND (inventory_total IS NULL OR inventory_taken < inventory_total) "
                "RETURNING inventory_taken"
            ),
            {"p": product["product_id"]},
        )
    ).first()
    if taken is None:
        # Either sold out or deactivated since the first read; tell which.
        check_on_sale(await voucher_catalog.product_row(conn, product["product_id"]), now)
        raise VoucherSoldOut("this voucher is sold out", product_id=str(product["product_id"]))


async def reserve(conn: AsyncConnection, command: ReserveVoucher) -> Reservation:
    """Reserve one item for the purchase named by (user, idempotency key), or resume it.

    New key: check the rules and take the item (nothing is written on refusal). Key of a
    purchase in flight: resume it (a retried activity, or a new run after a terminated one).
    Completed: return its voucher. Failed (undone): try again as the next attempt."""
    now = (await conn.execute(text("SELECT now()"))).scalar_one()
    existing = (
        (
            await conn.execute(
                text(
                    f"SELECT {_PURCHASE_COLUMNS} FROM voucher_purchases "
                    "WHERE user_id = :u AND idempotency_key = :k FOR UPDATE"
                ),
                {"u": command.user_id, "k": command.idempotency_key},
            )
        )
        .mappings()
        .first()
    )
    if existing is not None and existing["product_id"] != command.product_id:
        raise IdempotencyConflict(
            "this idempotency key was already used to buy another voucher",
            idempotency_key=command.idempotency_key,
            product_id=str(existing["product_id"]),
        )
    product = await voucher_catalog.product_row(conn, command.product_id)
    if existing is not None and existing["status"] != "failed":
        await conn.execute(
            text("UPDATE voucher_purchases SET run_id = :r WHERE purchase_id = :p"),
            {"r": command.run_id, "p": existing["purchase_id"]},
        )
        voucher = None
        if existing["status"] == "completed":
            voucher = await voucher_of_purchase(conn, existing["purchase_id"])
        return Reservation(
            purchase_id=existing["purchase_id"],
            attempt=existing["attempt"],
            product_name=product["name"],
            price_points=existing["price_points"],
            status=existing["status"],
            burn_tx_id=existing["burn_tx_id"],
            voucher=voucher,
        )

    await _take_items(conn, command.user_id, product, now)
    row = (
        (
            await conn.execute(
                text(
                    "INSERT INTO voucher_purchases (user_id, idempotency_key, product_id, "
                    "price_points, run_id) VALUES (:u, :k, :p, :price, :r) "
                    "ON CONFLICT (user_id, idempotency_key) DO UPDATE SET status = 'reserved', "
                    "attempt = voucher_purchases.attempt + 1, run_id = EXCLUDED.run_id, "
                    "price_points = EXCLUDED.price_points, burn_tx_id = NULL, "
                    "refund_tx_id = NULL, failure_code = NULL, failure_message = NULL, "
                    "updated_at = now() WHERE voucher_purchases.status = 'failed' "
                    "RETURNING purchase_id, attempt"
                ),
                {
                    "u": command.user_id,
                    "k": command.idempotency_key,
                    "p": command.product_id,
                    "price": product["price_points"],
                    "r": command.run_id,
                },
            )
        )
        .mappings()
        .first()
    )
    if row is None:  # a concurrent first attempt with this key won; retrying resumes it
        raise RuntimeError("purchase key taken concurrently; retry")
    return Reservation(
        purchase_id=row["purchase_id"],
        attempt=row["attempt"],
        product_name=product["name"],
        price_points=product["price_points"],
        status="reserved",
    )


async def record_burn(
    conn: AsyncConnection, purchase_id: uuid.UUID, attempt: int, tx_id: int
) -> None:
    result = await conn.execute(
        text(
            "UPDATE voucher_purchases SET status = 'paid', burn_tx_id = :t, updated_at = now() "
            "WHERE purchase_id = :p AND attempt = :a AND status IN ('reserved', 'paid')"
        ),
        {"t": tx_id, "p": purchase_id, "a": attempt},
    )
    if result.rowcount != 1:
        raise ValidationFailed(
            "the purchase is no longer reserved for this attempt", purchase_id=str(purchase_id)
        )


async def issue(conn: AsyncConnection, purchase_id: uuid.UUID) -> VoucherOut:
    """Issue the purchase's voucher: exactly one per purchase, whatever retries happen."""
    purchase = await _purchase(conn, purchase_id)
    if purchase["status"] == "completed":
        return await voucher_of_purchase(conn, purchase_id)
    if purchase["status"] != "paid":
        raise ValidationFailed(
            f"a voucher is issued only for a paid purchase (this one is {purchase['status']})",
            purchase_id=str(purchase_id),
        )
    product = await voucher_catalog.product_row(conn, purchase["product_id"])
    now = (await conn.execute(text("SELECT now()"))).scalar_one()
    expires_at = voucher_expiry(now, product["voucher_valid_days"], product["voucher_valid_until"])
    if product["code_source"] == "uploaded":
        codes = [await _pool_code(conn, purchase)]
    else:
        codes = [generate_code() for _ in range(5)]
    voucher_id: uuid.UUID | None = None
    for code in codes:  # a generated code colliding with a known one is merely redrawn
        voucher_id = (
            await conn.execute(
                text(
                    "INSERT INTO vouchers (purchase_id, product_id, user_id, code, price_points, "
                    "issued_at, expires_at) VALUES (:pur, :prod, :u, :code, :price, :now, :exp) "
                    "ON CONFLICT (code) DO NOTHING RETURNING voucher_id"
                ),
                {
                    "pur": purchase_id,
                    "prod": purchase["product_id"],
                    "u": purchase["user_id"],
                    "code": code,
                    "price": purchase["price_points"],
                    "now": now,
                    "exp": expires_at,
                },
            )
        ).scalar_one_or_none()
        if voucher_id is not None:
            break
    if voucher_id is None:
        raise RuntimeError("could not draw an unused voucher code")
    await conn.execute(
        text(
            "UPDATE voucher_purchases SET status = 'completed', updated_at = now() "
            "WHERE purchase_id = :p"
        ),
        {"p": purchase_id},
    )
    return await voucher_of_purchase(conn, purchase_id)


async def _pool_code(conn: AsyncConnection, purchase: RowMapping) -> str:
    code = (
        await conn.execute(
            text(
                "UPDATE voucher_code_pool SET purchase_id = :pur, assigned_at = now() "
                "WHERE pool_id = (SELECT pool_id FROM voucher_code_pool "
                "WHERE product_id = :prod AND purchase_id IS NULL ORDER BY pool_id "
                "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING code"
            ),
            {"pur": purchase["purchase_id"], "prod": purchase["product_id"]},
        )
    ).scalar_one_or_none()
    if code is None:  # cannot happen while inventory counts the pool; retrying will not help
        raise VoucherSoldOut("the product's uploaded codes are exhausted")
    return str(code)


async def record_refund(
    conn: AsyncConnection, purchase_id: uuid.UUID, attempt: int, tx_id: int
) -> None:
    await conn.execute(
        text(
            "UPDATE voucher_purchases SET refund_tx_id = :t, updated_at = now() "
            "WHERE purchase_id = :p AND attempt = :a"
        ),
        {"t": tx_id, "p": purchase_id, "a": attempt},
    )


async def release(
    conn: AsyncConnection,
    purchase_id: uuid.UUID,
    attempt: int,
    *,
    failure_code: str,
    failure_message: str,
) -> bool:
    """Undo the reservation: the item and the customer's allowance go back, the purchase is
    marked failed. Idempotent (False when this attempt was already released). A completed
    purchase is never undone here."""
    purchase = await _purchase(conn, purchase_id)
    if purchase["attempt"] != attempt or purchase["status"] == "failed":
        return False
    if purchase["status"] == "completed":
        raise VoucherNotUsable(
            "a completed purchase cannot be undone", purchase_id=str(purchase_id)
        )
    if purchase["status"] == "paid" and purchase["refund_tx_id"] is None:
        raise ValidationFailed("refund the points before releasing a paid purchase")
    await conn.execute(
        text(
            "UPDATE voucher_customer_counts SET taken = taken - 1 "
            "WHERE product_id = :prod AND user_id = :u"
        ),
        {"prod": purchase["product_id"], "u": purchase["user_id"]},
    )
    await conn.execute(
        text(
            "UPDATE voucher_products SET inventory_taken = inventory_taken - 1 "
            "WHERE product_id = :prod"
        ),
        {"prod": purchase["product_id"]},
    )
    await conn.execute(
        text(
            "UPDATE voucher_purchases SET status = 'failed', failure_code = :c, "
            "failure_message = :m, updated_at = now() WHERE purchase_id = :p"
        ),
        {"c": failure_code, "m": failure_message[:1000], "p": purchase_id},
    )
    return True


# --- issued vouchers -------------------------------------------------------------------------

_VOUCHER_SELECT = (
    "SELECT v.voucher_id, v.code, v.status, v.product_id, p.name AS product_name, v.user_id, "
    "v.price_points, v.purchase_id, v.issued_at, v.expires_at, v.used_at, v.used_reference, "
    "now() AS now FROM vouchers v JOIN voucher_products p ON p.product_id = v.product_id "
)


def _voucher(row: RowMapping) -> VoucherOut:
    fields = {k: row[k] for k in row if k != "now"}
    fields["status"] = shown_status(row["status"], row["expires_at"], row["now"])
    return VoucherOut(**fields)


async def voucher_of_purchase(conn: AsyncConnection, purchase_id: uuid.UUID) -> VoucherOut:
    row = (
        (await conn.execute(text(_VOUCHER_SELECT + "WHERE v.purchase_id = :p"), {"p": purchase_id}))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no voucher for purchase {purchase_id}", purchase_id=str(purchase_id))
    return _voucher(row)


async def list_vouchers(
    conn: AsyncConnection, user_id: str, *, status: VoucherStatus | None = None, limit: int = 200
) -> list[VoucherOut]:
    clauses = ["v.user_id = :u"]
    if status == "active":
        clauses.append("v.status = 'active' AND (v.expires_at IS NULL OR v.expires_at > now())")
    elif status == "expired":
        clauses.append("(v.status = 'expired' OR (v.status = 'active' AND v.expires_at <= now()))")
    elif status == "used":
        clauses.append("v.status = 'used'")
    rows = (
        await conn.execute(
            text(
                _VOUCHER_SELECT + f"WHERE {' AND '.join(clauses)} "
                "ORDER BY v.issued_at DESC, v.voucher_id LIMIT :limit"
            ),
            {"u": user_id, "limit": limit},
        )
    ).mappings()
    return [_voucher(r) for r in rows]


async def use_voucher(
    conn: AsyncConnection, user_id: str, voucher_id: uuid.UUID, reference: str | None
) -> tuple[VoucherOut, bool]:
    """Mark the voucher used; (voucher, True) when it was already used with this reference."""
    row = (
        (
            await conn.execute(
                text(
                    "UPDATE vouchers SET status = 'used', used_at = now(), used_reference = :r "
                    "WHERE voucher_id = :v AND user_id = :u AND status = 'active' "
                    "AND (expires_at IS NULL OR expires_at > now()) RETURNING voucher_id"
                ),
                {"v": voucher_id, "u": user_id, "r": reference},
            )
        )
        .mappings()
        .first()
    )
    found = (
        (
            await conn.execute(
                text(_VOUCHER_SELECT + "WHERE v.voucher_id = :v AND v.user_id = :u"),
                {"v": voucher_id, "u": user_id},
            )
        )
        .mappings()
        .first()
    )
    if found is None:
        raise NotFound(f"no voucher {voucher_id} in this wallet", voucher_id=str(voucher_id))
    voucher = _voucher(found)
    if row is not None:
        return voucher, False
    if voucher.status == "used" and voucher.used_reference == reference:
        return voucher, True
    raise VoucherNotUsable(
        f"the voucher is {voucher.status}", voucher_id=str(voucher_id), status=voucher.status
    )
