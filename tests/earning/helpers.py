"""What the earning tests share: booking events as the booking platform sends them, the
workflows' results (bounded), and the postings a wallet got."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty.earning.contracts import AccrualState, RefundOutcome
from tests.harness.api import Api
from tests.harness.waits import workflow_result


async def paid(
    api: Api, user_id: str, booking_id: str, amount: int, **extra: Any
) -> httpx.Response:
    """The booking platform reports the booking paid (payment id `pi-<booking>` unless given)."""
    return await api.event(
        type="payment_succeeded",
        booking_id=booking_id,
        user_id=user_id,
        payment_id=extra.pop("payment_id", f"pi-{booking_id}"),
        amount_paid=amount,
        currency="VND",
        **extra,
    )


async def refunded(
    api: Api, user_id: str, booking_id: str, refund_id: str, amount: int, **extra: Any
) -> httpx.Response:
    return await api.event(
        type="booking_refunded",
        booking_id=booking_id,
        user_id=user_id,
        refund_id=refund_id,
        refund_amount=amount,
        currency="VND",
        **extra,
    )


async def accrual_result(client: Client, booking_id: str, within: float = 60) -> AccrualState:
    return await workflow_result(client, f"accrual-{booking_id}", AccrualState, within)


async def refund_result(
    client: Client, booking_id: str, refund_id: str, within: float = 60
) -> RefundOutcome:
    return await workflow_result(client, f"refund-{booking_id}-{refund_id}", RefundOutcome, within)


async def postings(engine: AsyncEngine, user_id: str) -> list[tuple[str, int, str | None]]:
    """(type, amount, booking_id) of every posting of the user's wallet, oldest first, without
    the test's seed."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT t.type, t.amount, t.booking_id FROM wallet_transactions t "
                    "JOIN wallets w ON w.wallet_id = t.wallet_id WHERE w.user_id = :u "
                    "AND t.idempotency_key NOT LIKE 'test-seed:%' ORDER BY t.tx_id"
                ),
                {"u": user_id},
            )
        ).all()
    return [(r[0], int(r[1]), r[2]) for r in rows]


async def earn_rows(engine: AsyncEngine, booking_id: str) -> list[tuple[int, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT amount, metadata FROM wallet_transactions "
                    "WHERE booking_id = :b AND type = 'earn' ORDER BY tx_id"
                ),
                {"b": booking_id},
            )
        ).all()
    return [(int(r[0]), r[1]) for r in rows]
