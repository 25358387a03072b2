"""The voucher catalog: products (price in points, inventory, sale window, validity of issued
vouchers, minimum tier, per-customer limit, active flag) and the pool of uploaded codes.

Functions take an AsyncConnection inside a transaction and never commit."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import NotFound, ValidationFailed
from loyalty.vouchers.schemas import CodesUploaded, ProductIn, ProductOut, ProductPatch

_PRODUCT_COLUMNS = (
    "product_id, name, description, price_points, code_source, inventory_total, "
    "inventory_taken, sale_starts_at, sale_ends_at, voucher_valid_days, voucher_valid_until, "
    "min_tier, per_customer_limit, active, created_at, updated_at"
)


def _product(row: RowMapping) -> ProductOut:
    total = row["inventory_total"]
    return ProductOut(
        **{k: row[k] for k in row if k not in ("inventory_total",)},
        inventory=total,
        inventory_left=None if total is None else total - row["inventory_taken"],
    )


async def _check_tier_exists(conn: AsyncConnection, tier: str | None) -> None:
    if tier is None:
        return
    found = (
        await conn.execute(text("SELECT 1 FROM loyalty_tiers WHERE code = :t"), {"t": tier})
    ).first()
    if found is None:
        raise ValidationFailed(f"unknown tier {tier!r}", min_tier=tier)


async def create_product(conn: AsyncConnection, body: ProductIn) -> ProductOut:
    await _check_tier_exists(conn, body.min_tier)
    row = (
        (
            await conn.execute(
                text(
                    "INSERT INTO voucher_products (name, description, price_points, code_source, "
                    "inventory_total, sale_starts_at, sale_ends_at, voucher_valid_days, "
                    "voucher_valid_until, min_tier, per_customer_limit, active) VALUES (:name, "
                    ":description, :price_points, :code_source, :inventory, :sale_starts_at, "
                    ":sale_ends_at, :voucher_valid_days, :voucher_valid_until, :min_tier, "
                    f":per_customer_limit, :active) RETURNING {_PRODUCT_COLUMNS}"
                ),
                {
                    **body.model_dump(),
                    "inventory": 0 if body.code_source == "uploaded" else body.inventory,
                },
            )
        )
        .mappings()
        .one()
    )
    return _product(row)


async def get_product(conn: AsyncConnection, product_id: uuid.UUID) -> ProductOut:
    return _product(await product_row(conn, product_id))


async def product_row(
    conn: AsyncConnection, product_id: uuid.UUID, *, lock: bool = False
) -> RowMapping:
    row = (
        (
            await conn.execute(
                text(
                    f"SELECT {_PRODUCT_COLUMNS} FROM voucher_products WHERE product_id = :p"
                    + (" FOR UPDATE" if lock else "")
                ),
                {"p": product_id},
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no voucher product {product_id}", product_id=str(product_id))
    return row


async def list_products(conn: AsyncConnection, *, include_inactive: bool) -> list[ProductOut]:
    where = "" if include_inactive else "WHERE active"
    rows = (
        await conn.execute(
            text(f"SELECT {_PRODUCT_COLUMNS} FROM voucher_products {where} ORDER BY created_at")
        )
    ).mappings()
    return [_product(r) for r in rows]


async def update_product(
    conn: AsyncConnection, product_id: uuid.UUID, patch: ProductPatch
) -> ProductOut:
    current = await product_row(conn, product_id, lock=True)
    changes = patch.model_dump(exclude_unset=True)
    if "min_tier" in changes:
        await _check_tier_exists(conn, changes["min_tier"])
    if "inventory" in changes:
        if current["code_source"] == "uploaded":
            raise ValidationFailed("an uploaded-code product's inventory is its uploaded codes")
        inventory = changes.pop("inventory")
        if inventory is not None and inventory < current["inventory_taken"]:
            raise ValidationFailed(
                f"inventory cannot go below the {current['inventory_taken']} items already taken",
                inventory_taken=current["inventory_taken"],
            )
        changes["inventory_total"] = inventory
    merged = {**current, **changes}
    starts, ends = merged["sale_starts_at"], merged["sale_ends_at"]
    if starts is not None and ends is not None and starts >= ends:
        raise ValidationFailed("sale_starts_at must be before sale_ends_at")
    if not changes:
        return _product(current)
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    row = (
        (
            await conn.execute(
                text(
                    f"UPDATE voucher_products SET {assignments}, updated_at = now() "
                    f"WHERE product_id = :product_id RETURNING {_PRODUCT_COLUMNS}"
                ),
                {**changes, "product_id": product_id},
            )
        )
        .mappings()
        .one()
    )
    return _product(row)


async def upload_codes(
    conn: AsyncConnection, product_id: uuid.UUID, codes: list[str]
) -> CodesUploaded:
    """Add codes to the product's pool; each new code is one more item for sale. Codes already
    known (in any product's pool or issued) are skipped and reported."""
    product = await product_row(conn, product_id, lock=True)
    if product["code_source"] != "uploaded":
        raise ValidationFailed("this product generates its codes; it takes no uploads")
    unique = list(dict.fromkeys(codes))
    issued = set(
        (
            await conn.execute(
                text("SELECT code FROM vouchers WHERE code = ANY(:codes)"), {"codes": unique}
            )
        ).scalars()
    )
    candidates = [c for c in unique if c not in issued]
    added = list(
        (
            await conn.execute(
                text(
                    "INSERT INTO voucher_code_pool (product_id, code) "
                    "SELECT :p, c FROM unnest(CAST(:codes AS text[])) AS c "
                    "ON CONFLICT (code) DO NOTHING RETURNING code"
                ),
                {"p": product_id, "codes": candidates},
            )
        ).scalars()
    )
    await conn.execute(
        text(
            "UPDATE voucher_products SET inventory_total = inventory_total + :n, "
            "updated_at = now() WHERE product_id = :p"
        ),
        {"n": len(added), "p": product_id},
    )
    added_set = set(added)
    return CodesUploaded(
        added=len(added),
        duplicates=[c for c in codes if c not in added_set],
        product=await get_product(conn, product_id),
    )
