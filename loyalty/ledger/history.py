"""A wallet's history: its ledger rows, newest first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.ledger.types import Posting

_COLUMNS = ", ".join(Posting.__dataclass_fields__)


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
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM wallet_transactions WHERE {' AND '.join(clauses)} "
            "ORDER BY tx_id DESC LIMIT :limit"
        ),
        params,
    )
    return [Posting(**row) for row in rows.mappings()]


async def posting(conn: AsyncConnection, tx_id: int) -> Posting | None:
    row = (
        (
            await conn.execute(
                text(f"SELECT {_COLUMNS} FROM wallet_transactions WHERE tx_id = :t"), {"t": tx_id}
            )
        )
        .mappings()
        .first()
    )
    return Posting(**row) if row else None
