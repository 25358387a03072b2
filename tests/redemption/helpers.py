"""What the checkout tests share beyond the harness: redeem over HTTP, play the customer in
localstripe, sign webhook payloads as Stripe does, read a booking's postings, a wallet's balance
and the webhook events seen, wait for the saga. Also where the saga's saved histories live (the
fault tests save some there too)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from loyalty.redemption import stripe_events
from loyalty.redemption.contracts import RedemptionState, workflow_id_for
from tests.harness.api import Api
from tests.harness.waits import workflow_result

HISTORIES = Path(__file__).parent / "histories"

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


def signed(payload: bytes, secret: str) -> dict[str, str]:
    """The headers of a webhook delivery signed with `secret`, as Stripe signs them."""
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


def intent_event(event_id: str, event_type: str, intent: dict[str, Any]) -> bytes:
    """A Stripe event about a PaymentIntent, as its webhook payload."""
    event = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "api_version": "2017-08-15",
        "data": {"object": intent},
    }
    return json.dumps(event).encode()


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


async def wait_for_end(client: Client, booking_id: str, within: float = 60) -> RedemptionState:
    """Wait until the saga has ended, and return its final state."""
    return await workflow_result(client, workflow_id_for(booking_id), RedemptionState, within)


async def wait_closed(
    client: Client, workflow_id: str, within: float = 10
) -> WorkflowExecutionStatus | None:
    """The run's status once it is no longer running (the saga ends itself right after
    answering a refused redeem; the answer can reach the caller a moment before)."""
    deadline = time.monotonic() + within
    while True:
        status = (await client.get_workflow_handle(workflow_id).describe()).status
        if status != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def redeem(
    api: Api,
    user: str,
    booking_id: str,
    *,
    points: int = 30_000,
    order: int = 100_000,
    **extra: Any,
) -> httpx.Response:
    body = {"booking_id": booking_id, "order_amount": order, "currency": "VND", "points": points}
    return await api.http.post(
        f"/wallets/{user}/redeem", json={**body, **extra}, headers=api.service
    )


async def events_of(engine: AsyncEngine, payment_intent_id: str) -> list[tuple[str, str]]:
    """(type, outcome) of the webhook events recorded for the PaymentIntent."""
    async with engine.connect() as conn:
        return [(t, o) for _, t, o in await stripe_events.outcomes(conn, payment_intent_id)]


async def status_of(api: Api, user: str, booking_id: str) -> dict[str, Any]:
    """GET /wallets/{user}/redemptions/{booking_id}, as the booking service reads it."""
    answer = await api.http.get(f"/wallets/{user}/redemptions/{booking_id}", headers=api.service)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]
