"""The ledger's side of the reconciliation, one keyset-paginated batch at a time: settled
checkouts (capture and release postings, with the order amount their hold posting recorded),
open checkout holds, and voucher purchases with their vouchers.

Only rows older than the run's `as_of` are read, so a run walks a fixed set however long it
takes. A checkout's hold posting is found through the booking index (hold postings have no
index on hold_id), and only hold postings made by a checkout carry `order_amount`."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.reconciliation.rules import OpenHold, PurchaseFacts, SettledCheckout
from loyalty.redemption.contracts import workflow_id_for

_SETTLED = text("""
    SELECT r.tx_id, r.type, r.hold_id::text AS hold_id, r.booking_id,
           r.metadata->>'payment_intent_id' AS payment_intent_id,
           h.metadata->>'order_amount' AS order_amount, r.currency_amount, r.currency
    FROM wallet_transactions r
    JOIN wallet_transactions h
      ON h.booking_id = r.booking_id AND h.hold_id = r.hold_id AND h.type = 'hold'
    WHERE r.type IN ('capture', 'release') AND r.tx_id > :after AND r.created_at < :as_of
      AND h.metadata ? 'order_amount'
    ORDER BY r.tx_id
    LIMIT :limit""")

_OPEN_HOLDS = text("""
    SELECT h.hold_id::text AS hold_id, h.booking_id, t.metadata->>'workflow_id' AS workflow_id,
           h.created_at, h.expires_at
    FROM holds h
    JOIN wallet_transactions t
      ON t.booking_id = h.booking_id AND t.hold_id = h.hold_id AND t.type = 'hold'
    WHERE h.status = 'open' AND h.hold_id > CAST(:after AS uuid) AND h.created_at < :before
      AND t.metadata ? 'order_amount'
    ORDER BY h.hold_id
    LIMIT :limit""")

_PURCHASES = text("""
    SELECT p.purchase_id::text AS purchase_id, p.status, p.burn_tx_id IS NOT NULL AS burned,
           p.refund_tx_id IS NOT NULL AS refunded, v.voucher_id::text AS voucher_id,
           p.updated_at < :settled_before AS settled
    FROM voucher_purchases p
    LEFT JOIN vouchers v ON v.purchase_id = p.purchase_id
    WHERE p.purchase_id > CAST(:after AS uuid) AND p.created_at < :as_of
    ORDER BY p.purchase_id
    LIMIT :limit""")

_NIL = str(uuid.UUID(int=0))


async def settled_checkouts(
    conn: AsyncConnection, *, after: str | None, as_of: datetime, limit: int
) -> list[SettledCheckout]:
    """The next checkout resolutions by tx_id (the cursor)."""
    params = {"after": int(after or 0), "as_of": as_of, "limit": limit}
    rows = (await conn.execute(_SETTLED, params)).mappings().all()
    return [
        SettledCheckout(
            tx_id=r["tx_id"],
            captured=r["type"] == "capture",
            hold_id=r["hold_id"],
            booking_id=r["booking_id"],
            payment_intent_id=r["payment_intent_id"],
            order_amount=int(r["order_amount"]),
            discount_minor=r["currency_amount"],
            currency=r["currency"],
        )
        for r in rows
    ]


async def open_holds(
    conn: AsyncConnection, *, after: str | None, as_of: datetime, grace: timedelta, limit: int
) -> list[OpenHold]:
    """The next open checkout holds by hold id (the cursor), placed more than `grace` before
    `as_of` (a younger one's saga may not be listed yet)."""
    params = {"after": after or _NIL, "before": as_of - grace, "limit": limit}
    rows = (await conn.execute(_OPEN_HOLDS, params)).mappings().all()
    return [
        OpenHold(
            hold_id=r["hold_id"],
            booking_id=r["booking_id"],
            workflow_id=r["workflow_id"] or workflow_id_for(r["booking_id"]),
            created_at=r["created_at"],
            expires_at=r["expires_at"],
        )
        for r in rows
    ]


async def purchases(
    conn: AsyncConnection, *, after: str | None, as_of: datetime, grace: timedelta, limit: int
) -> list[PurchaseFacts]:
    """The next voucher purchases by purchase id (the cursor), with their voucher if any."""
    params = {
        "after": after or _NIL,
        "as_of": as_of,
        "settled_before": as_of - grace,
        "limit": limit,
    }
    rows = (await conn.execute(_PURCHASES, params)).mappings().all()
    return [
        PurchaseFacts(
            purchase_id=r["purchase_id"],
            status=r["status"],
            burned=r["burned"],
            refunded=r["refunded"],
            has_voucher=r["voucher_id"] is not None,
            settled=r["settled"],
            voucher_id=r["voucher_id"],
        )
        for r in rows
    ]
