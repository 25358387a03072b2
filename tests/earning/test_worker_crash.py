"""`python worker.py` killed with SIGKILL in the middle of an accrual, then restarted: the
points are posted exactly once and the customer is notified exactly once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.earning.helpers import accrual_result, paid, postings


async def _accrual_status(engine: AsyncEngine, booking_id: str) -> str | None:
    async with engine.connect() as conn:
        status: str | None = (
            await conn.execute(
                text("SELECT status FROM booking_accruals WHERE booking_id = :b"),
                {"b": booking_id},
            )
        ).scalar_one_or_none()
    return status


async def _until(engine: AsyncEngine, booking_id: str, status: str) -> None:
    async with asyncio.timeout(30):
        while True:
            if await _accrual_status(engine, booking_id) == status:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
def pending_seconds() -> int:
    return 3


async def test_worker_killed_while_points_are_pending(
    api, worker_process, temporal_client, engine, receiver, new_user_id, booking_id
):
    user = new_user_id()
    first = await worker_process.start()
    assert (await paid(api, user, booking_id, 640_000)).status_code == 202
    await _until(engine, booking_id, "pending")
    worker_process.kill(first)

    await asyncio.sleep(3.5)  # the timer fires while no worker runs
    assert await postings(engine, user) == []
    await worker_process.start()
    state = await accrual_result(temporal_client, booking_id, within=60)

    assert (state.status, state.outcome.points) == ("posted", 640)
    assert await postings(engine, user) == [("earn", 640, booking_id)]
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]


@pytest.mark.parametrize("pending_seconds", [0])
async def test_worker_killed_right_after_the_earn_was_posted(
    api, worker_process, temporal_client, engine, receiver, new_user_id, booking_id
):
    user = new_user_id()
    receiver.fail_first = 1_000  # keep the workflow busy notifying when the worker dies
    first = await worker_process.start()
    assert (await paid(api, user, booking_id, 90_000)).status_code == 202
    await _until(engine, booking_id, "posted")
    worker_process.kill(first)

    receiver.fail_first = 0
    await worker_process.start()
    state = await accrual_result(temporal_client, booking_id, within=90)

    assert (state.status, state.outcome.points) == ("posted", 90)
    assert await postings(engine, user) == [("earn", 90, booking_id)]
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]
