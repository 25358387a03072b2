"""The customer's issued vouchers: reading them (with the status they show now) and marking one
used. A voucher is issued once per completed purchase (loyalty.vouchers.purchases).

Functions take an AsyncConnection inside a transaction and never commit."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import NotFound
from loyalty.vouchers.contracts import VoucherOut
from loyalty.vouchers.rules import VoucherNotUsable, VoucherStatus, shown_status

# The database's clock decides expiry, in the query and in the status shown from its rows alike.
_VOUCHER_SELECT = (
    "SELECT v.voucher_id, v.code, v.status, v.product_id, p.name AS product_name, v.user_id, "
    "v.price_points, v.purchase_id, v.issued_at, v.expires_at, v.used_at, v.used_reference, "
    "now() AS now FROM vouchers v JOIN voucher_products p ON p.product_id = v.product_id "
)

_USE = text(
    "UPDATE vouchers SET status = 'used', used_at = now(), used_reference = :r "
    "WHERE voucher_id = :v AND user_id = :u AND status = 'active' "
    "AND (expires_at IS NULL OR expires_at > now()) RETURNING voucher_id"
)

# Each status as `shown_status` shows it, so a filtered list agrees with the statuses it shows.
_STATUS_FILTER: dict[VoucherStatus, str] = {
    "active": "v.status = 'active' AND (v.expires_at IS NULL OR v.expires_at > now())",
    "expired": "(v.status = 'expired' OR (v.status = 'active' AND v.expires_at <= now()))",
    "used": "v.status = 'used'",
}


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
    if status is not None:
        clauses.append(_STATUS_FILTER[status])
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
    used = (await conn.execute(_USE, {"v": voucher_id, "u": user_id, "r": reference})).first()
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
    if used is not None:
        return voucher, False
    if voucher.status == "used" and voucher.used_reference == reference:
        return voucher, True
    raise VoucherNotUsable(
        f"the voucher is {voucher.status}", voucher_id=str(voucher_id), status=voucher.status
    )
