"""The table of point rates: what one point is worth, from when. Every ledger row is valued at
the rate in force when it was posted (or a campaign's own rate), by the database itself
(migration 0013's trigger), so this module only lists rates and adds new ones.

A rate is never rewritten: the table is insert-only (its trigger refuses UPDATE, DELETE and
TRUNCATE) and a new rate may not start in the past, by the database's clock, so what was in
force for a row already posted stays what it was. Functions take the caller's connection and
never commit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import IdempotencyConflict, ValidationFailed
from loyalty.ledger.schemas import RateIn, RateOut

# The seed rate starts at '-infinity', which the API writes as null ("from the beginning").
_COLUMNS = (
    "rate_id, CASE WHEN starts_at = '-infinity' THEN NULL ELSE starts_at END AS starts_at, "
    "currency, point_value_minor, created_by, created_at, "
    "rate_id = (SELECT rate_id FROM point_rates WHERE starts_at <= now() "
    "ORDER BY starts_at DESC LIMIT 1) AS in_force"
)
_LIST = text(f"SELECT {_COLUMNS} FROM point_rates ORDER BY point_rates.starts_at")
_BY_START = text(f"SELECT {_COLUMNS} FROM point_rates WHERE starts_at = :s")
# The start is checked against the database's clock, the one the trigger values rows by.
_INSERT = text(
    "INSERT INTO point_rates (starts_at, currency, point_value_minor, created_by) "
    "SELECT :s, :c, :v, :actor WHERE CAST(:s AS timestamptz) >= clock_timestamp() "
    f"ON CONFLICT (starts_at) DO NOTHING RETURNING {_COLUMNS}"
)


class RateExists(IdempotencyConflict):
    code = "rate_exists"


async def list_rates(conn: AsyncConnection) -> list[RateOut]:
    """Every rate, oldest start first; `in_force` marks the one that values postings now."""
    return [_out(row) for row in (await conn.execute(_LIST)).mappings()]


async def add_rate(
    conn: AsyncConnection, body: RateIn, *, actor: str, currency: str
) -> tuple[RateOut, bool]:
    """Add a rate from `body.starts_at` on (not in the past); the same body again answers the
    stored rate (created=False), another rate at that start is a conflict. Points are valued in
    the service's one `currency`."""
    if body.currency != currency:
        raise ValidationFailed(
            f"point rates are in {currency}", currency=body.currency, expected=currency
        )
    params = {
        "s": body.starts_at,
        "c": body.currency,
        "v": body.point_value_minor,
        "actor": actor,
    }
    try:
        row = (await conn.execute(_INSERT, params)).mappings().first()
    except IntegrityError as err:  # the trigger's clock moved past the start meanwhile
        raise ValidationFailed(
            "a point rate may not start in the past", starts_at=body.starts_at.isoformat()
        ) from err
    if row is not None:
        return _out(row), True
    existing = (await conn.execute(_BY_START, {"s": body.starts_at})).mappings().first()
    if existing is None:
        raise ValidationFailed(
            "a point rate may not start in the past", starts_at=body.starts_at.isoformat()
        )
    stored = _out(existing)
    if (stored.currency, stored.point_value_minor) != (body.currency, body.point_value_minor):
        raise RateExists(
            "another rate starts at that instant; rates are never rewritten: add one that "
            "starts later",
            starts_at=body.starts_at.isoformat(),
        )
    return stored, False


def _out(row: Mapping[Any, Any]) -> RateOut:
    return RateOut.model_validate(dict(row))
