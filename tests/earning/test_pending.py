"""Pending points: held by a durable timer, activated when it fires, reduced or voided by a
refund before then (so a refund inside the window costs nothing)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.earning.conftest import accrual_result, postings, refund_result


@pytest.fixture
def pending_seconds() -> int:
    return 3


async def _wait_pending(api, user: str, points: int) -> dict:
    async with asyncio.timeout(20):
        while True:
            response = await api.http.get(f"/wallets/{user}", headers=api.customer(user))
            if response.status_code == 200 and response.json()["pending_points"] == points:
                return response.json()
            await asyncio.sleep(0.1)


async def test_pending_points_are_activated_by_the_timer(
    api, worker, temporal_client, engine, new_user_id, booking_id, receiver, save_history
):
    user = new_user_id()
    await api.paid(user, booking_id, 420_000)
    wallet = await _wait_pending(api, user, 420)
    assert (wallet["balance"], wallet["available"]) == (0, 0)
    assert await postings(engine, user) == []
    state = await accrual_result(temporal_client, booking_id)
    assert (state.status, state.outcome.points) == ("posted", 420)
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["pending_points"]) == (420, 0)
    assert await postings(engine, user) == [("earn", 420, booking_id)]
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]
    await save_history("accrual_pending_activated", f"accrual-{booking_id}")


async def test_end_of_stay_sets_the_pending_date(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    user = new_user_id()
    stay_ends = datetime.now(UTC) + timedelta(seconds=1)
    await api.paid(user, booking_id, 50_000, stay_ends_at=stay_ends.isoformat())
    state = await accrual_result(temporal_client, booking_id, within=15)
    assert state.outcome is not None and state.outcome.status == "posted"
    assert await postings(engine, user) == [("earn", 50, booking_id)]


@pytest.mark.parametrize("pending_seconds", [120])
async def test_full_refund_before_activation_voids_the_pending_points(
    api, worker, temporal_client, engine, make_wallet, booking_id, pending_seconds, save_history
):
    user = await make_wallet(10)
    await api.paid(user, booking_id, 300_000)
    await _wait_pending(api, user, 300)
    await api.refunded(user, booking_id, "r1", 300_000)
    outcome = await refund_result(temporal_client, booking_id, "r1")
    assert (outcome.pending_reduced, outcome.pending_voided, outcome.points_clawed_back) == (
        300,
        True,
        0,
    )
    # The accrual stops waiting for its two-minute timer at once.
    state = await accrual_result(temporal_client, booking_id, within=10)
    assert (state.status, state.outcome.points) == ("voided", 0)
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["pending_points"], wallet["debt_points"]) == (10, 0, 0)
    assert await postings(engine, user) == []
    await save_history("accrual_pending_voided", f"accrual-{booking_id}")
    await save_history("refund_voids_pending", f"refund-{booking_id}-r1")


async def test_partial_refund_before_activation_reduces_the_pending_points(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    user = new_user_id()
    await api.paid(user, booking_id, 300_000)
    await _wait_pending(api, user, 300)
    await api.refunded(user, booking_id, "r1", 100_000)
    outcome = await refund_result(temporal_client, booking_id, "r1")
    assert (outcome.pending_reduced, outcome.pending_voided) == (100, False)
    assert (await api.wallet(user))["pending_points"] == 200
    state = await accrual_result(temporal_client, booking_id)
    assert (state.status, state.outcome.points, state.outcome.planned_points) == (
        "posted",
        200,
        300,
    )
    assert await postings(engine, user) == [("earn", 200, booking_id)]

    # A later refund of the rest takes back only what was posted.
    await api.refunded(user, booking_id, "r2", 200_000)
    rest = await refund_result(temporal_client, booking_id, "r2")
    assert rest.points_clawed_back == 200
    assert (await api.wallet(user))["balance"] == 0
