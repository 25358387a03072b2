"""Backoffice customer lists: wallets filtered by tier, balance, lifetime points and last
activity, keyset-paginated on user id (rows never repeat or go missing across pages), and the
same rows as CSV for campaign tools.

Last activity is the wallet's latest ledger posting (its highest tx_id, one index probe per
wallet), or the wallet's creation when it has none."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.core.errors import ValidationFailed
from loyalty.wallets.cursors import CUSTOMERS
from loyalty.wallets.schemas import CustomerOut, CustomerPage, CustomerQuery

CSV_COLUMNS = tuple(CustomerOut.model_fields)
CSV_PAGE = 2000


def _where(query: CustomerQuery) -> tuple[list[str], dict[str, Any]]:
    ranges = (
        ("min_balance", "w.balance >= :min_balance"),
        ("max_balance", "w.balance <= :max_balance"),
        ("min_lifetime", "w.lifetime_points >= :min_lifetime"),
        ("max_lifetime", "w.lifetime_points <= :max_lifetime"),
        ("active_since", "COALESCE(la.at, w.created_at) >= :active_since"),
        ("inactive_since", "COALESCE(la.at, w.created_at) < :inactive_since"),
    )
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, clause in ranges:
        value = getattr(query, name)
        if value is not None:
            clauses.append(clause)
            params[name] = value
    if query.tier:
        clauses.append("w.tier = ANY(CAST(:tiers AS text[]))")
        params["tiers"] = list(query.tier)
    for low, high in (("min_balance", "max_balance"), ("min_lifetime", "max_lifetime")):
        if low in params and high in params and params[low] > params[high]:
            raise ValidationFailed(
                f"{low} is above {high}", **{low: params[low], high: params[high]}
            )
    return clauses, params


async def _rows(
    conn: AsyncConnection, query: CustomerQuery, *, after: str | None, limit: int
) -> Sequence[CustomerOut]:
    clauses, params = _where(query)
    if after is not None:
        clauses.append("w.user_id > :after")
        params["after"] = after
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await conn.execute(
        text(
            "SELECT w.user_id, w.wallet_id, w.tier, w.balance, w.held, "
            "w.balance - w.held AS available, w.lifetime_points, "
            "COALESCE(la.at, w.created_at) AS last_activity_at, w.created_at "
            "FROM wallets w LEFT JOIN LATERAL (SELECT t.created_at AS at "
            "FROM wallet_transactions t WHERE t.wallet_id = w.wallet_id "
            f"ORDER BY t.tx_id DESC LIMIT 1) la ON true {where} "
            "ORDER BY w.user_id LIMIT :limit"
        ),
        {**params, "limit": limit},
    )
    return [CustomerOut.model_validate(dict(r)) for r in rows.mappings()]


async def customer_page(conn: AsyncConnection, query: CustomerQuery) -> CustomerPage:
    after = CUSTOMERS.decode(query.cursor) if query.cursor else None
    rows = await _rows(conn, query, after=after, limit=query.limit + 1)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return CustomerPage(
        items=list(page), next_cursor=CUSTOMERS.encode(page[-1].user_id) if more else None
    )


def _cell(value: object) -> str:
    cell = "" if value is None else str(value)
    # Spreadsheets run cells starting with these as formulas (CSV injection).
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def customer_csv(engine: AsyncEngine, query: CustomerQuery) -> AsyncIterator[str]:
    """Every matching customer from the cursor on, in pages, each page its own short read.
    Bad filters or cursors are refused here, before the response starts."""
    after = CUSTOMERS.decode(query.cursor) if query.cursor else None
    _where(query)
    return _csv_pages(engine, query, after)


async def _csv_pages(
    engine: AsyncEngine, query: CustomerQuery, after: str | None
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    while True:
        async with engine.connect() as conn:
            rows = await _rows(conn, query, after=after, limit=CSV_PAGE)
        for row in rows:
            writer.writerow([_cell(getattr(row, c)) for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_PAGE:
            return
        after = rows[-1].user_id
