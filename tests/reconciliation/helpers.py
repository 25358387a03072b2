"""What the reconciliation tests share: real checkouts through the saga, mismatches planted the
way they happen (a PaymentIntent changed behind the saga's back, a saga terminated, a voucher
row lost), and the findings read back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.temporal import checkout
from loyalty import ledger
from loyalty.core import db
from loyalty.core.settings import Settings
from loyalty.reconciliation.contracts import ReconciliationInput, ReconciliationResult
from loyalty.redemption.contracts import (
    PaymentEvent,
    RedeemRequest,
    RedemptionHold,
    RedemptionState,
    workflow_id_for,
)
from tests.harness.waits import workflow_result
from tests.redemption.helpers import pay
from workflows.reconciliation import ReconciliationWorkflow


def new_booking() -> str:
    return f"bk-recon-{uuid.uuid4().hex[:10]}"


async def hold_for(
    client: Client,
    settings: Settings,
    user: str,
    booking: str,
    *,
    order: int = 100_000,
    points: int = 30_000,
) -> RedemptionHold:
    request = RedeemRequest(
        user_id=user, booking_id=booking, order_amount=order, currency="VND", points=points
    )
    return await checkout.redeem(client, settings, request)


async def ended(client: Client, booking: str) -> RedemptionState:
    return await workflow_result(client, workflow_id_for(booking), RedemptionState, 60)


async def paid_checkout(
    client: Client,
    settings: Settings,
    stripe_client: stripe.StripeClient,
    user: str,
    booking: str,
    *,
    charge: int | None = None,
) -> RedemptionHold:
    """A checkout the customer pays and the saga captures; `charge` changes the PaymentIntent's
    amount first (as a change made in Stripe's dashboard would)."""
    hold = await hold_for(client, settings, user, booking)
    assert hold.payment_intent_id is not None
    if charge is not None:
        await stripe_client.v1.payment_intents.update_async(
            hold.payment_intent_id, {"amount": charge}
        )
    assert await pay(stripe_client, hold.payment_intent_id) == "succeeded"
    await checkout.payment_news(
        client,
        hold.workflow_id,
        "payment_succeeded",
        PaymentEvent(payment_intent_id=hold.payment_intent_id, event_id=f"evt_{booking}"),
    )
    assert (await ended(client, booking)).status == "captured"
    return hold


async def decided_checkout(
    client: Client, settings: Settings, user: str, booking: str, decision: str, **hold: Any
) -> RedemptionHold:
    """A checkout the booking service confirms (captured, its PaymentIntent cancelled) or
    releases (released, its PaymentIntent cancelled)."""
    held = await hold_for(client, settings, user, booking, **hold)
    await checkout.decide(client, booking, decision, None)  # type: ignore[arg-type]
    final = await ended(client, booking)
    assert final.status == ("captured" if decision == "confirm" else "released")
    return held


async def planted_settlement(
    engine: AsyncEngine, user: str, booking: str, payment_intent_id: str, *, captured: bool
) -> str:
    """A checkout's hold and its capture or release, posted through the ledger as the saga
    posts them, naming `payment_intent_id` (10,000 points on a 50,000 order). Returns the hold
    id. For what no saga does on its own: a release whose PaymentIntent was paid anyway (the
    cancel never reached Stripe), a capture naming a PaymentIntent Stripe does not know."""
    hold_id = uuid.uuid4()
    async with db.transaction(engine) as conn:
        await ledger.hold(
            conn,
            user_id=user,
            points=10_000,
            idempotency_key=f"plant:{booking}:hold",
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            booking_id=booking,
            hold_id=hold_id,
            description=f"checkout {booking}",
            metadata={"workflow_id": workflow_id_for(booking), "order_amount": 50_000},
        )
        if captured:
            await ledger.capture(
                conn,
                hold_id=hold_id,
                idempotency_key=f"plant:{booking}:capture",
                currency_amount=10_000,
                currency="VND",
                description=f"checkout {booking}: paid",
                metadata={"payment_intent_id": payment_intent_id},
            )
        else:
            await ledger.release(
                conn,
                hold_id=hold_id,
                idempotency_key=f"plant:{booking}:release",
                description=f"checkout {booking}: released",
                metadata={"payment_intent_id": payment_intent_id},
            )
    return str(hold_id)


async def release_hold(engine: AsyncEngine, hold_id: str) -> None:
    """Settle a hold a test left open, before its expiry makes it stuck money."""
    async with db.transaction(engine) as conn:
        await ledger.release(
            conn, hold_id=uuid.UUID(hold_id), idempotency_key=f"test-cleanup:{hold_id}"
        )


async def reconcile(
    client: Client, settings: Settings, **inp: Any
) -> tuple[str, ReconciliationResult]:
    """Run a reconciliation on the test's worker; (workflow id, result)."""
    workflow_id = f"reconciliation-test-{uuid.uuid4().hex[:8]}"
    result = await client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(**{"grace_seconds": 0, **inp}),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        execution_timeout=timedelta(minutes=5),
    )
    return workflow_id, result


async def findings_of(
    engine: AsyncEngine, reconciliation_id: str, subjects: set[str]
) -> list[tuple[str, str]]:
    """(kind, subject) of the run's findings about these subjects, sorted."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, subject FROM reconciliation_findings "
                "WHERE reconciliation_id = :r AND subject = ANY(:s) ORDER BY kind, subject"
            ),
            {"r": reconciliation_id, "s": sorted(subjects)},
        )
        return [(k, s) for k, s in rows.all()]


async def purchase_of(engine: AsyncEngine, user: str) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(
                    text("SELECT purchase_id FROM voucher_purchases WHERE user_id = :u"),
                    {"u": user},
                )
            ).scalar_one()
        )
