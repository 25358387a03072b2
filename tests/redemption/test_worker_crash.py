"""The worker process is killed (SIGKILL) after the hold; a new one finishes the saga, once."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty.redemption import stripe_events
from tests.harness.api import Api
from tests.harness.histories import SaveHistory
from tests.harness.waits import eventually
from tests.harness.workers import WorkerProcess
from tests.redemption.helpers import pay, postings, wait_for_end, wallet

MakeWallet = Callable[..., Awaitable[str]]


async def test_worker_killed_after_the_hold_saga_completes_exactly_once(
    live_api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    first = await worker_process.start()
    answer = await live_api.http.post(
        f"/wallets/{user}/redeem",
        json={
            "booking_id": booking_id,
            "order_amount": 100_000,
            "currency": "VND",
            "points": 30_000,
        },
        headers=live_api.service,
    )
    assert answer.status_code == 200, answer.text
    hold = answer.json()

    worker_process.kill(first)
    assert first.returncode == -signal.SIGKILL

    # The customer pays while no worker runs: the webhook's signal waits in Temporal.
    await pay(stripe_client, hold["payment_intent_id"])

    async def webhook_outcomes() -> list[tuple[str, str, str]]:
        async with engine.connect() as conn:
            return await stripe_events.outcomes(conn, hold["payment_intent_id"])

    seen = await eventually(webhook_outcomes, seconds=30)
    assert [outcome for _, _, outcome in seen] == ["signalled"]
    assert (await wallet(engine, user)).held == 30_000  # nothing moved without a worker

    await worker_process.start()
    final = await wait_for_end(temporal_client, booking_id, within=60)

    assert final.status == "captured"
    assert await postings(engine, booking_id) == [
        ("hold", 0, 30_000, None),
        ("capture", -30_000, -30_000, 30_000),
    ]
    assert (await wallet(engine, user)).balance == 20_000
    await save_history("worker_killed_captured", hold["workflow_id"])
