"""Calling the posting functions (migration 0007): the one place that talks to them, and turns
their refusals (SQLSTATE class LW, a JSON DETAIL with the code) into the LoyaltyError family.

A refusal aborts the caller's transaction, so nothing of the posting stays; the caller rolls
back (`loyalty.core.db.transaction` does).

Two transports, one call. Inside a transaction the call goes through SQLAlchemy, which owns the
transaction. On a connection in autocommit (`loyalty.core.db.autocommit`: a posting on its own,
atomic without BEGIN and COMMIT) SQLAlchemy has no transaction to keep, and the call is sent on
the driver connection under it (SQLAlchemy's public `driver_connection`): the same statement,
for about a third of the client CPU (bench/ledger_parts.py measures both)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import LoyaltyError, ValidationFailed
from loyalty.ledger.types import MAX_POINTS, HoldState, Posting, PostingResult, WalletState
from loyalty.observability import metrics

REFUSAL_CLASS = "LW"  # SQLSTATE class of the posting functions' refusals


@dataclass(frozen=True)
class Alongside:
    """Writes that must land with a posting, in its own statement (one round trip): common table
    expressions that may read the posting's row as `posted` (tx_id, wallet_id, ...). Their
    parameters must not reuse the posting function's names (prefix them)."""

    sql: str
    params: Mapping[str, Any]


@functools.lru_cache(maxsize=256)
def _call_sql(function: str, names: tuple[str, ...], numbered: bool) -> str:
    """`SELECT * FROM function(p_x => :x, ...)`, or with `$1, $2 ...` for the driver. Named
    notation: a call names what it passes, and new optional parameters never shift old
    callers."""
    marks = [f"${i}" for i in range(1, len(names) + 1)] if numbered else [f":{n}" for n in names]
    arguments = ", ".join(f"p_{name} => {mark}" for name, mark in zip(names, marks, strict=True))
    return f"SELECT * FROM {function}({arguments})"


@functools.lru_cache(maxsize=256)
def _statement(function: str, names: tuple[str, ...], alongside: str | None) -> TextClause:
    # One TextClause per shape, so SQLAlchemy compiles it once.
    posting = _call_sql(function, names, numbered=False)
    if alongside is not None:
        posting = f"WITH posted AS ({posting}), {alongside} SELECT * FROM posted"
    return text(posting)


def refusal(err: BaseException) -> LoyaltyError | None:
    """The LoyaltyError a posting function refused with, or None for any other error. `err` is
    SQLAlchemy's DBAPIError (whose cause is the driver's) or the driver's own exception."""
    driver_error = err.orig.__cause__ if isinstance(err, DBAPIError) and err.orig else err
    sqlstate = getattr(driver_error, "sqlstate", None) or ""
    if not sqlstate.startswith(REFUSAL_CLASS):
        return None
    message = getattr(driver_error, "message", None) or str(driver_error)
    try:
        detail = json.loads(getattr(driver_error, "detail", None) or "{}")
    except ValueError:
        detail = {}
    cls = LoyaltyError.for_code(detail.get("code")) or LoyaltyError
    return cls(message, **(detail.get("details") or {}))


async def call(
    conn: AsyncConnection, function: str, *, alongside: Alongside | None = None, **params: Any
) -> RowMapping:
    """`SELECT * FROM function(...)`: its one row, or the LoyaltyError it refused with."""
    if "metadata" in params:  # jsonb travels as JSON text
        params["metadata"] = json.dumps(dict(params["metadata"] or {}), default=str)
    if alongside is None and _autocommits(conn):
        row = await _on_driver(conn, function, params)
    else:
        row = await _through_sqlalchemy(conn, function, alongside, params)
    # A new ledger row (ledger_wallet posts none: no `replayed`), counted once it commits.
    if row.get("replayed", True) is False:
        metrics.count_posting(conn, row["type"], row["amount"], row["held_delta"])
    return row


async def call_optional(conn: AsyncConnection, function: str, **params: Any) -> RowMapping | None:
    """`SELECT * FROM function(...)` of a function that may return no row (SETOF)."""
    if _autocommits(conn):
        row = await _on_driver(conn, function, params)
    else:
        row = await _through_sqlalchemy(conn, function, None, params, optional=True)
    if row is not None and row.get("replayed", True) is False:
        metrics.count_posting(conn, row["type"], row["amount"], row["held_delta"])
    return row


async def _through_sqlalchemy(
    conn: AsyncConnection,
    function: str,
    alongside: Alongside | None,
    params: dict[str, Any],
    *,
    optional: bool = False,
) -> Any:
    statement = _statement(function, tuple(params), alongside.sql if alongside else None)
    try:
        result = await conn.execute(
            statement, {**params, **(alongside.params if alongside else {})}
        )
    except DBAPIError as err:
        refused = refusal(err)
        if refused is None:
            raise
        raise refused from None
    return result.mappings().one_or_none() if optional else result.mappings().one()


def _autocommits(conn: AsyncConnection) -> bool:
    sync = conn.sync_connection  # the connection's own options (engine's and its own)
    return sync is not None and sync.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


async def _on_driver(conn: AsyncConnection, function: str, params: dict[str, Any]) -> Any:
    """The call on the driver connection (asyncpg: `$n` parameters, its own statement cache)."""
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:  # a connection that is open has one
        raise RuntimeError("the pooled connection has no driver connection")
    try:
        sql = _call_sql(function, tuple(params), numbered=True)
        return await driver.fetchrow(sql, *params.values())
    except Exception as err:  # the driver's own exception types
        refused = refusal(err)
        if refused is None:
            raise
        raise refused from None


def check_points(points: int, *, signed: bool = False) -> None:
    """What the driver could not even send: not an integer, or beyond the functions' bound."""
    # bool is an int subclass; a caller passing True means a bug, not one point.
    if not isinstance(points, int) or isinstance(points, bool):
        raise ValidationFailed("points must be an integer", points=repr(points))
    if abs(points) > MAX_POINTS:
        raise ValidationFailed(f"points must be at most {MAX_POINTS}", points=points)


def posting_result(row: Mapping[Any, Any]) -> PostingResult:
    # The functions' answer has the row's own columns; its value is read with the row later.
    posting = Posting(**{k: row[k] for k in Posting.__dataclass_fields__ if k in row})
    wallet = WalletState(
        wallet_id=row["wallet_id"],
        user_id=row["user_id"],
        balance=row["balance"],
        held=row["held"],
        tier=row["tier"],
        lifetime_points=row["lifetime_points"],
        version=row["version"],
        created_at=row["wallet_created_at"],
        updated_at=row["wallet_updated_at"],
    )
    return PostingResult(posting, wallet, bool(row["replayed"]))


def hold_of(row: Mapping[Any, Any]) -> HoldState:
    """The hold a hold, capture or release call returned beside its posting."""
    return HoldState(
        hold_id=row["hold_id"],
        wallet_id=row["wallet_id"],
        amount=row["hold_amount"],
        booking_id=row["booking_id"],
        status=row["hold_status"],
        expires_at=row["hold_expires_at"],
        created_at=row["hold_created_at"],
        resolved_at=row["hold_resolved_at"],
    )
