"""Pending points: held by a durable timer, activated when it fires, reduced or voided by a
refund before then (so a refund inside the window costs nothing).

These run on Temporal's time-skipping test server: the pending period is two weeks, as a real
one would be, and passes in no time while the test waits for a workflow's result. What a test
asserts is why the workflow ended (the timer fired, or a refund's signal cut it short), read
from the workflow's history, never how fast it ended."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from loyalty.core.settings import Settings
from tests.earning.helpers import accrual_result, paid, postings, refund_result, refunded
from tests.harness import workers
from tests.harness.histories import SaveHistory, history_saver
from tests.harness.receiver import Receiver
from tests.harness.waits import eventually

PENDING = timedelta(days=14)
T = TypeVar("T")


@pytest.fixture
def settings_overrides(receiver: Receiver, time_skipping: WorkflowEnvironment) -> dict[str, Any]:
    """The API starts workflows on the time-skipping server."""
    return {
        "notify_url": receiver.url,
        "earn_pending_seconds": int(PENDING.total_seconds()),
        "accrual_wait_for_payment_seconds": 120,
        "temporal_address": time_skipping.client.service_client.config.target_host,
    }


@pytest.fixture
def client(time_skipping: WorkflowEnvironment) -> Client:
    """Waiting on a result through this client lets the server skip time."""
    return time_skipping.client


@pytest.fixture
async def skipping_worker(
    client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    async with workers.in_process(client, engine, settings):
        yield


@pytest.fixture
def skipping(time_skipping: Any) -> Callable[[Awaitable[T]], Awaitable[T]]:
    """`await skipping(accrual_result(...))`: time passes while the test waits. (The server
    skips time on its own only for results of workflows its own client started; these were
    started by the API.)"""

    async def wait(awaitable: Awaitable[T]) -> T:
        async with time_skipping.time_skipping_unlocked():
            return await awaitable

    return wait


@pytest.fixture
def save_history(client: Client) -> SaveHistory:
    return history_saver(client, Path(__file__).parent / "histories")


async def _pending(api: Any, user: str, points: int) -> dict[str, Any]:
    async def shown() -> dict[str, Any] | None:
        response = await api.http.get(f"/wallets/{user}", headers=api.customer(user))
        wallet: dict[str, Any] = response.json()
        return (
            wallet if response.status_code == 200 and wallet["pending_points"] == points else None
        )

    return await eventually(shown)


async def _events(client: Client, workflow_id: str) -> list[EventType.ValueType]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [event.event_type for event in history.events]


async def test_pending_points_are_activated_by_the_timer(
    api, skipping_worker, skipping, client, engine, new_user_id, booking_id, receiver, save_history
):
    user = new_user_id()
    await paid(api, user, booking_id, 420_000)
    wallet = await _pending(api, user, 420)
    assert (wallet["balance"], wallet["available"]) == (0, 0)
    assert await postings(engine, user) == []

    state = await skipping(accrual_result(client, booking_id))

    assert (state.status, state.outcome.points) == ("posted", 420)
    assert EventType.EVENT_TYPE_TIMER_FIRED in await _events(client, f"accrual-{booking_id}")
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["pending_points"]) == (420, 0)
    assert await postings(engine, user) == [("earn", 420, booking_id)]
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]
    await save_history("accrual_pending_activated", f"accrual-{booking_id}")


async def test_end_of_stay_sets_the_pending_date(
    api, skipping_worker, skipping, time_skipping, client, engine, new_user_id, booking_id
):
    user = new_user_id()
    # The workflow's clock is the test server's, which earlier tests moved on.
    stay_ends = await time_skipping.get_current_time() + timedelta(days=30)
    await paid(api, user, booking_id, 50_000, stay_ends_at=stay_ends.isoformat())
    await _pending(api, user, 50)

    state = await skipping(accrual_result(client, booking_id))

    assert state.outcome is not None
    assert (state.outcome.status, state.outcome.pending_until) == ("posted", None)
    assert await postings(engine, user) == [("earn", 50, booking_id)]


async def test_full_refund_before_activation_voids_the_pending_points(
    api, skipping_worker, skipping, client, engine, make_wallet, booking_id, save_history
):
    user = await make_wallet(10)
    await paid(api, user, booking_id, 300_000)
    await _pending(api, user, 300)
    await refunded(api, user, booking_id, "r1", 300_000)
    outcome = await refund_result(client, booking_id, "r1")
    assert (outcome.pending_reduced, outcome.pending_voided, outcome.points_clawed_back) == (
        300,
        True,
        0,
    )

    state = await skipping(accrual_result(client, booking_id))

    # The refund's signal ended the wait, not the two-week timer.
    assert (state.status, state.outcome.points) == ("voided", 0)
    events = await _events(client, f"accrual-{booking_id}")
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in events
    assert EventType.EVENT_TYPE_TIMER_FIRED not in events
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["pending_points"], wallet["debt_points"]) == (10, 0, 0)
    assert await postings(engine, user) == []
    await save_history("accrual_pending_voided", f"accrual-{booking_id}")
    await save_history("refund_voids_pending", f"refund-{booking_id}-r1")


async def test_partial_refund_before_activation_reduces_the_pending_points(
    api, skipping_worker, skipping, client, engine, new_user_id, booking_id
):
    user = new_user_id()
    await paid(api, user, booking_id, 300_000)
    await _pending(api, user, 300)
    await refunded(api, user, booking_id, "r1", 100_000)
    outcome = await refund_result(client, booking_id, "r1")
    assert (outcome.pending_reduced, outcome.pending_voided) == (100, False)
    assert (await api.wallet(user))["pending_points"] == 200

    state = await skipping(accrual_result(client, booking_id))

    assert (state.status, state.outcome.points, state.outcome.planned_points) == (
        "posted",
        200,
        300,
    )
    assert await postings(engine, user) == [("earn", 200, booking_id)]

    # A later refund of the rest takes back only what was posted.
    await refunded(api, user, booking_id, "r2", 200_000)
    rest = await refund_result(client, booking_id, "r2")
    assert rest.points_clawed_back == 200
    assert (await api.wallet(user))["balance"] == 0
