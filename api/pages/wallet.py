"""The customer's Wallet tab: balance, held and available points, the tier and the way to the
next one, recent transactions (paged, filtered, each with a plain-words reason), vouchers, and
a small chart of the balance. Reads through the same functions as GET /wallets/{userId}."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import check_wallet_access
from api.pages.render import render
from api.pages.session import PageForbidden, Visitor
from loyalty.core import db
from loyalty.core.errors import LoyaltyError, WalletNotFound
from loyalty.core.settings import Settings
from loyalty.ledger.schemas import TransactionOut
from loyalty.ledger.types import TX_TYPES
from loyalty.tiers import admin as tier_admin
from loyalty.vouchers.issued import list_vouchers
from loyalty.wallets import views
from loyalty.wallets.schemas import TransactionQuery

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 10


def reason(tx: TransactionOut) -> str:
    """The posting in plain words: an earn's rule trace, else its description or type."""
    rules = tx.metadata.get("rules") if isinstance(tx.metadata, dict) else None
    if tx.type == "earn" and isinstance(rules, list) and rules:
        parts = []
        for rule in rules:
            detail = rule.get("detail") if isinstance(rule, dict) else None
            points = rule.get("points") if isinstance(rule, dict) else None
            parts.append(
                f"{detail or rule.get('rule', '')} ({points:+,} points)"
                if isinstance(points, int)
                else str(detail or rule)
            )
        return " + ".join(parts)
    if tx.description:
        return tx.description
    booking = f" for booking {tx.booking_id}" if tx.booking_id else ""
    return {
        "earn": "points earned",
        "hold": "points held at checkout",
        "capture": "points paid at checkout",
        "release": "held points given back",
        "burn": "points spent",
        "refund": "points given back on a refund",
        "clawback": "points taken back on a refund",
        "expire": "points expired",
        "adjustment": "adjustment",
    }.get(tx.type, tx.type) + booking


def balance_series(balance: int, items: Sequence[TransactionOut]) -> list[int]:
    """The balance after each of these postings, oldest first (walking back from today's)."""
    series = [balance]
    for tx in items:  # newest first
        series.append(series[-1] - tx.amount)
    return list(reversed(series))


def sparkline(series: list[int], width: int = 320, height: int = 80) -> str:
    if len(series) < 2:
        return ""
    low, high = min(series), max(series)
    span = max(high - low, 1)
    step = width / (len(series) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 4 - (v - low) * (height - 8) / span:.1f}"
        for i, v in enumerate(series)
    )


def _day(value: str | None, *, next_day: bool = False) -> datetime | None:
    if not value:
        return None
    day = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    return day + timedelta(days=1) if next_day else day


@router.get("/wallet")
async def wallet_page(
    request: Request,
    principal: Visitor,
    user: str | None = None,
    type: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies the default)
    cursor: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Response:
    # Admins (and the booking service) may look at any wallet, as in the API; a customer only
    # at their own, whatever `user` says.
    user_id = user or principal.subject
    try:
        check_wallet_access(principal, user_id)
    except LoyaltyError as exc:
        raise PageForbidden(exc.message) from exc
    settings: Settings = request.app.state.settings
    context = await wallet_context(
        request, settings, user_id, type, cursor, since=since or None, until=until or None
    )
    return await render(request, "wallet.html", principal=principal, **context)


async def wallet_context(
    request: Request,
    settings: Settings,
    user_id: str,
    types: list[str],
    cursor: str | None,
    page_size: int = PAGE_SIZE,
    *,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    filter_error = None
    try:
        # Dates are whole UTC days: `until` includes its day.
        query = TransactionQuery.model_validate(
            {
                "type": types,
                "cursor": cursor,
                "limit": page_size,
                "since": _day(since),
                "until": _day(until, next_day=True),
            }
        )
    except ValueError:  # pydantic's ValidationError too
        filter_error = "check the filters: a known type, dates as YYYY-MM-DD"
        query = TransactionQuery(limit=page_size)
    async with db.transaction(request.app.state.engine) as conn:
        try:
            wallet = await views.wallet_view(conn, user_id, settings)
        except WalletNotFound:
            return {"user_id": user_id, "wallet": None}
        try:
            page = await views.transaction_page(conn, user_id, query)
        except LoyaltyError as exc:
            filter_error = exc.message
            page = await views.transaction_page(conn, user_id, TransactionQuery(limit=page_size))
        recent = await views.transaction_page(conn, user_id, TransactionQuery(limit=30))
        vouchers = await list_vouchers(conn, user_id, limit=50)
        ladder = await tier_admin.list_tiers(conn)
    progress = 100
    if wallet.next_tier is not None and wallet.next_tier.threshold > 0:
        progress = min(100, 100 * wallet.next_tier.basis_points // wallet.next_tier.threshold)
    next_tier = next(
        (t for t in ladder if wallet.next_tier and t.code == wallet.next_tier.code), None
    )
    return {
        "user_id": user_id,
        "wallet": wallet,
        "progress": progress,
        "next_tier_full": next_tier,
        "items": [(tx, reason(tx)) for tx in page.items],
        "next_cursor": page.next_cursor,
        "types": types,
        "since": since or "",
        "until": until or "",
        "all_types": TX_TYPES,
        "filter_error": filter_error,
        "vouchers": vouchers,
        "chart": sparkline(balance_series(wallet.balance, recent.items)),
    }
