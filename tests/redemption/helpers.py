"""Small helpers for the redemption tests: play the customer in localstripe, read the ledger,
wait for the saga."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from api.temporal import checkout
from loyalty.redemption.rules import RedemptionState

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then is declined at charge


async def pay(client: stripe.StripeClient, payment_intent_id: str, card: str = GOOD_CARD) -> str:
    """The customer pays the PaymentIntent with a card (one confirm naming the payment method,
    as Stripe.js sends it); returns its status afterwards."""
    method = await client.v1.payment_methods.create_async(
        {
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    with contextlib.suppress(stripe.CardError):  # declined: Stripe sends payment_failed
        await client.v1.payment_intents.confirm_async(
            payment_intent_id, {"payment_method": method.id}
        )
    intent = await client.v1.payment_intents.retrieve_async(payment_intent_id)
    return str(intent.status)


@dataclass(frozen=True)
class WalletRow:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


async def wallet(engine: AsyncEngine, user_id: str) -> WalletRow:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT balance, held FROM wallets WHERE user_id = :u"), {"u": user_id}
            )
        ).one()
    return WalletRow(int(row[0]), int(row[1]))


async def postings(engine: AsyncEngine, booking_id: str) -> list[tuple[str, int, int, int | None]]:
    """(type, amount, held_delta, currency_amount) of every posting of the booking, in order."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT type, amount, held_delta, currency_amount FROM wallet_transactions "
                    "WHERE booking_id = :b ORDER BY tx_id"
                ),
                {"b": booking_id},
            )
        ).all()
    return [(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]


async def wait_for_end(client: Client, booking_id: str, within: float = 30) -> RedemptionState:
    """Wait until the saga has ended, and return its final state."""
    handle = client.get_workflow_handle(f"redemption-{booking_id}", result_type=RedemptionState)
    async with asyncio.timeout(within):
        return await handle.result()


async def wait_for_status(
    client: Client, booking_id: str, *statuses: str, within: float = 30
) -> RedemptionState:
    deadline = time.monotonic() + within
    while True:
        current = await checkout.state(client, booking_id)
        if current.status in statuses:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"saga is {current.status}, expected one of {statuses}")
        await asyncio.sleep(0.1)


async def execution_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(workflow_id).describe()).status


async def wait_closed(
    client: Client, workflow_id: str, within: float = 5
) -> WorkflowExecutionStatus | None:
    """The run's status once it is no longer running (the saga ends itself right after
    answering a refused redeem; the answer can reach the caller a moment before)."""
    deadline = time.monotonic() + within
    while True:
        status = await execution_status(client, workflow_id)
        if status != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)
