"""A voucher purchase in the database: reservation of inventory, the record of the points burned
and refunded, the issue of the code, and the release that undoes a purchase. (The catalog is in
loyalty.vouchers.catalog, the issued vouchers in loyalty.vouchers.issued.)

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

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    NotFound,
    ValidationFailed,
    WalletNotFound,
)
from loyalty.vouchers import catalog
from loyalty.vouchers.contracts import Reservation, ReserveVoucher, VoucherOut
from loyalty.vouchers.issued import voucher_of_purchase
from loyalty.vouchers.rules import (
    VoucherLimitReached,
    VoucherNotUsable,
    VoucherSoldOut,
    check_on_sale,
    check_tier,
    generate_code,
    voucher_expiry,
)

# A generated code that collides with a known one is redrawn, this many times at most.
CODE_DRAWS = 5

_PURCHASE_COLUMNS = (
    "purchase_id, user_id, idempotency_key, product_id, price_points, status, attempt, run_id, "
    "burn_tx_id, refund_tx_id"
)
_NOW = text("SELECT now()")
_LOCK_PURCHASE = text(
    f"SELECT {_PURCHASE_COLUMNS} FROM voucher_purchases WHERE purchase_id = :p FOR UPDATE"
)
_LOCK_PURCHASE_BY_KEY = text(
    f"SELECT {_PURCHASE_COLUMNS} FROM voucher_purchases "
    "WHERE user_id = :u AND idempotency_key = :k FOR UPDATE"
)
_BUYER = text(
    "SELECT w.tier, w.balance - w.held AS available, t.rank, "
    "(SELECT rank FROM loyalty_tiers WHERE code = :min_tier) AS min_rank "
    "FROM wallets w JOIN loyalty_tiers t ON t.code = w.tier WHERE w.user_id = :u"
)
_COUNT_CUSTOMER = text(
    "INSERT INTO voucher_customer_counts AS c (product_id, user_id, taken) "
    "VALUES (:p, :u, 1) ON CONFLICT (product_id, user_id) DO UPDATE "
    "SET taken = c.taken + 1 "
    "WHERE CAST(:limit AS integer) IS NULL OR c.taken < CAST(:limit AS integer) "
    "RETURNING taken"
)
_TAKE_ITEM = text(
    "UPDATE voucher_products SET inventory_taken = inventory_taken + 1 "
    "WHERE product_id = :p AND active "
    "AND (inventory_total IS NULL OR inventory_taken < inventory_total) "
    "RETURNING inventory_taken"
)
_RESUMED = text("UPDATE voucher_purchases SET run_id = :r WHERE purchase_id = :p")
# A first attempt, or the next attempt of a failed (undone) purchase with the same key.
_NEW_ATTEMPT = text(
    "INSERT INTO voucher_purchases (user_id, idempotency_key, product_id, "
    "price_points, run_id) VALUES (:u, :k, :p, :price, :r) "
    "ON CONFLICT (user_id, idempotency_key) DO UPDATE SET status = 'reserved', "
    "attempt = voucher_purchases.attempt + 1, run_id = EXCLUDED.run_id, "
    "price_points = EXCLUDED.price_points, burn_tx_id = NULL, "
    "refund_tx_id = NULL, failure_code = NULL, failure_message = NULL, "
    "updated_at = now() WHERE voucher_purchases.status = 'failed' "
    "RETURNING purchase_id, attempt"
)
_PAID = text(
    "UPDATE voucher_purchases SET status = 'paid', burn_tx_id = :t, updated_at = now() "
    "WHERE purchase_id = :p AND attempt = :a AND status IN ('reserved', 'paid')"
)
_ISSUE = text(
    "INSERT INTO vouchers (purchase_id, product_id, user_id, code, price_points, "
    "issued_at, expires_at) VALUES (:pur, :prod, :u, :code, :price, :now, :exp) "
    "ON CONFLICT (code) DO NOTHING RETURNING voucher_id"
)
_COMPLETED = text(
    "UPDATE voucher_purchases SET status = 'completed', updated_at = now() WHERE purchase_id = :p"
)
_POOL_CODE = text(
    "UPDATE voucher_code_pool SET purchase_id = :pur, assigned_at = now() "
    "WHERE pool_id = (SELECT pool_id FROM voucher_code_pool "
    "WHERE product_id = :prod AND purchase_id IS NULL ORDER BY pool_id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING code"
)
_REFUNDED = text(
    "UPDATE voucher_purchases SET refund_tx_id = :t, updated_at = now() "
    "WHERE purchase_id = :p AND attempt = :a"
)
_UNCOUNT_CUSTOMER = text(
    "UPDATE voucher_customer_counts SET taken = taken - 1 WHERE product_id = :prod AND user_id = :u"
)
_PUT_ITEM_BACK = text(
    "UPDATE voucher_products SET inventory_taken = inventory_taken - 1 WHERE product_id = :prod"
)
_FAILED = text(
    "UPDATE voucher_purchases SET status = 'failed', failure_code = :c, "
    "failure_message = :m, updated_at = now() WHERE purchase_id = :p"
)


async def _purchase(conn: AsyncConnection, purchase_id: uuid.UUID) -> RowMapping:
    row = (await conn.execute(_LOCK_PURCHASE, {"p": purchase_id})).mappings().first()
    if row is None:
        raise NotFound(f"no voucher purchase {purchase_id}", purchase_id=str(purchase_id))
    return row


async def _take_items(
    conn: AsyncConnection, user_id: str, product: RowMapping, now: datetime
) -> None:
    """Check the rules and take one item and one of the customer's allowance, or refuse."""
    check_on_sale(product, now)
    wallet = (
        (await conn.execute(_BUYER, {"u": user_id, "min_tier": product["min_tier"]}))
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
            _COUNT_CUSTOMER,
            {"p": product["product_id"], "u": user_id, "limit": product["per_customer_limit"]},
        )
    ).first()
    if counted is None:
        raise VoucherLimitReached(
            f"at most {product['per_customer_limit']} of this voucher per customer",
            limit=product["per_customer_limit"],
        )
    taken = (await conn.execute(_TAKE_ITEM, {"p": product["product_id"]})).first()
    if taken is None:
        # Either sold out or deactivated since the first read; tell which.
        check_on_sale(await catalog.product_row(conn, product["product_id"]), now)
        raise VoucherSoldOut("this voucher is sold out", product_id=str(product["product_id"]))


async def reserve(conn: AsyncConnection, command: ReserveVoucher) -> Reservation:
    """Reserve one item for the purchase named by (user, idempotency key), or resume it.

    New key: check the rules and take the item (nothing is written on refusal). Key of a
    purchase in flight: resume it (a retried activity, or a new run after a terminated one).
    Completed: return its voucher. Failed (undone): try again as the next attempt."""
    now = (await conn.execute(_NOW)).scalar_one()
    existing = (
        (
            await conn.execute(
                _LOCK_PURCHASE_BY_KEY, {"u": command.user_id, "k": command.idempotency_key}
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
    product = await catalog.product_row(conn, command.product_id)
    if existing is not None and existing["status"] != "failed":
        await conn.execute(_RESUMED, {"r": command.run_id, "p": existing["purchase_id"]})
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
                _NEW_ATTEMPT,
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
    result = await conn.execute(_PAID, {"t": tx_id, "p": purchase_id, "a": attempt})
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
    product = await catalog.product_row(conn, purchase["product_id"])
    now = (await conn.execute(_NOW)).scalar_one()
    expires_at = voucher_expiry(now, product["voucher_valid_days"], product["voucher_valid_until"])
    if product["code_source"] == "uploaded":
        codes = [await _pool_code(conn, purchase)]
    else:
        codes = [generate_code() for _ in range(CODE_DRAWS)]
    voucher_id: uuid.UUID | None = None
    for code in codes:
        voucher_id = (
            await conn.execute(
                _ISSUE,
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
    await conn.execute(_COMPLETED, {"p": purchase_id})
    return await voucher_of_purchase(conn, purchase_id)


async def _pool_code(conn: AsyncConnection, purchase: RowMapping) -> str:
    code = (
        await conn.execute(
            _POOL_CODE, {"pur": purchase["purchase_id"], "prod": purchase["product_id"]}
        )
    ).scalar_one_or_none()
    if code is None:  # cannot happen while inventory counts the pool; retrying will not help
        raise VoucherSoldOut("the product's uploaded codes are exhausted")
    return str(code)


async def record_refund(
    conn: AsyncConnection, purchase_id: uuid.UUID, attempt: int, tx_id: int
) -> None:
    await conn.execute(_REFUNDED, {"t": tx_id, "p": purchase_id, "a": attempt})


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
        _UNCOUNT_CUSTOMER, {"prod": purchase["product_id"], "u": purchase["user_id"]}
    )
    await conn.execute(_PUT_ITEM_BACK, {"prod": purchase["product_id"]})
    await conn.execute(_FAILED, {"c": failure_code, "m": failure_message[:1000], "p": purchase_id})
    return True
