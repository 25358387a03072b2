"""The worker as a process (`python worker.py`): killed (SIGKILL) after the hold, a new one
finishes the saga, once; and what its log says of a refused redeem."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from api.temporal import checkout
from loyalty.core.errors import InsufficientPoints
from loyalty.core.settings import Settings
from loyalty.redemption import stripe_events
from loyalty.redemption.contracts import RedeemRequest
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


async def test_the_worker_logs_a_refusal_in_one_line_at_info(
    worker_process: WorkerProcess,
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
    tmp_path: Path,
) -> None:
    """`python worker.py` as shipped: a redeem refused for a business reason is one line at info
    in its log, without a traceback, and the run is Completed (`rejected`), not Failed."""
    user = await make_wallet(1_000)
    await worker_process.start()
    with pytest.raises(InsufficientPoints):
        await checkout.redeem(
            temporal_client,
            settings,
            RedeemRequest(user_id=user, booking_id=booking_id, order_amount=100_000,
                          currency="VND", points=5_000),
        )  # fmt: skip
    final = await wait_for_end(temporal_client, booking_id)
    assert (final.status, final.error_code) == ("rejected", "insufficient_points")
    description = await temporal_client.get_workflow_handle(final.workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    worker_process.stop_all()

    log = (tmp_path / "worker-0.log").read_text()
    refusals = [line for line in log.splitlines() if "refused: " in line]
    assert len(refusals) == 1, log
    assert refusals[0].startswith("INFO loyalty.activities: refused: insufficient_points: ")
    assert "Traceback" not in log and "WARNING temporalio" not in log, log
