"""Refund compensation end to end: points paid with are returned and points earned are clawed
back, pro rata and cumulatively, once per refund; a clawback beyond the balance is a debt. The
tier credit (lifetime and trailing points) goes with every point due, taken or owed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import ledger
from tests.earning.helpers import accrual_result, paid, postings, refund_result, refunded


async def redeem(engine: AsyncEngine, user: str, booking_id: str, points: int) -> None:
    """Checkout with points, as the redemption saga posts it: a hold, then its capture."""
    async with engine.begin() as conn:
        the_hold, _ = await ledger.hold(
            conn,
            user_id=user,
            points=points,
            idempotency_key=f"test-hold:{booking_id}",
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            booking_id=booking_id,
        )
        await ledger.capture(
            conn,
            hold_id=the_hold.hold_id,
            idempotency_key=f"test-capture:{booking_id}",
            currency_amount=points,
            currency="VND",
        )


async def test_full_refund_after_redemption_returns_burn_and_claws_back_earn(
    api, worker, temporal_client, engine, make_wallet, receiver, booking_id, save_history
):
    user = await make_wallet(1_000)
    await redeem(engine, user, booking_id, 300)  # 300 points off a 1,000,300 VND order
    await paid(api, user, booking_id, 700_000)
    await accrual_result(temporal_client, booking_id)
    assert (await api.wallet(user))["balance"] == 1_000 - 300 + 700

    response = await refunded(api, user, booking_id, "r1", 0, full=True)
    assert response.status_code == 202, response.text
    assert response.json()["workflow_id"] == f"refund-{booking_id}-r1"
    outcome = await refund_result(temporal_client, booking_id, "r1")
    assert (outcome.points_returned, outcome.points_clawed_back, outcome.debt_recorded) == (
        300,
        700,
        0,
    )
    assert await postings(engine, user) == [
        ("hold", 0, booking_id),
        ("capture", -300, booking_id),
        ("earn", 700, booking_id),
        ("refund", 300, booking_id),
        ("clawback", -700, booking_id),
    ]
    wallet = await api.wallet(user)
    # The refund takes back the tier credit with the points: lifetime drops by the 700 earned.
    assert (wallet["balance"], wallet["lifetime_points"], wallet["debt_points"]) == (
        1_000,
        1_000,
        0,
    )
    kinds = sorted(r["kind"] for r in receiver.received if r["user_id"] == user)
    assert kinds == ["points_clawed_back", "points_earned", "points_returned"]
    await save_history("refund_burn_returned_and_clawed_back", f"refund-{booking_id}-r1")


async def test_partial_refunds_are_pro_rata_and_add_up_to_the_full_refund(
    api, worker, temporal_client, engine, make_wallet, booking_id
):
    user = await make_wallet(1_000)
    await redeem(engine, user, booking_id, 300)
    await paid(api, user, booking_id, 700_000)
    await accrual_result(temporal_client, booking_id)

    await refunded(api, user, booking_id, "r1", 233_333)  # a third of the money, rounded down
    first = await refund_result(temporal_client, booking_id, "r1")
    # earned 700 * 233,333 / 700,000 = 233.33 -> 233; burned 300 * ... = 99.99 -> 99
    assert (first.points_returned, first.points_clawed_back) == (99, 233)
    # lifetime points drop pro rata with the points clawed back: 1,000 + 700 - 233
    assert (await api.wallet(user))["lifetime_points"] == 1_467

    await refunded(api, user, booking_id, "r2", 233_333)
    second = await refund_result(temporal_client, booking_id, "r2")
    # cumulative: 466,666 refunded -> 466 clawed and 199 returned in all
    assert (second.points_returned, second.points_clawed_back) == (100, 233)
    assert (await api.wallet(user))["lifetime_points"] == 1_234

    await refunded(api, user, booking_id, "r3", 233_334)  # the rest: everything is back
    third = await refund_result(temporal_client, booking_id, "r3")
    assert (third.points_returned, third.points_clawed_back) == (101, 234)

    moves = await postings(engine, user)
    assert sum(a for t, a, _ in moves if t == "refund") == 300
    assert sum(a for t, a, _ in moves if t == "clawback") == -700
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["lifetime_points"]) == (1_000, 1_000)


async def test_redelivered_refund_does_nothing_new(
    api, worker, temporal_client, engine, make_wallet, booking_id
):
    user = await make_wallet(500)
    await redeem(engine, user, booking_id, 200)
    await paid(api, user, booking_id, 400_000)
    await accrual_result(temporal_client, booking_id)
    first = await refunded(api, user, booking_id, "r1", 100_000, event_id=f"rf-{booking_id}")
    assert first.status_code == 202
    await refund_result(temporal_client, booking_id, "r1")
    before = await postings(engine, user)

    same = await refunded(api, user, booking_id, "r1", 100_000, event_id=f"rf-{booking_id}")
    assert (same.status_code, same.json()["outcome"]) == (200, "duplicate")
    new_id = await refunded(api, user, booking_id, "r1", 100_000)
    assert (new_id.status_code, new_id.json()["outcome"]) == (202, "already_finished")
    assert await postings(engine, user) == before
    # 100,000 of 400,000: a quarter of 400 earned and of 200 burned
    assert before[-2:] == [("refund", 50, booking_id), ("clawback", -100, booking_id)]


async def test_clawback_beyond_the_balance_becomes_a_debt_repaid_by_later_earns(
    api, worker, temporal_client, engine, new_user_id, booking_id, save_history
):
    user = new_user_id()
    await paid(api, user, booking_id, 500_000)
    await accrual_result(temporal_client, booking_id)
    async with engine.begin() as conn:  # the customer spends most of it elsewhere
        await ledger.burn(
            conn,
            user_id=user,
            points=450,
            idempotency_key=f"test-voucher:{user}",
            counter_account="voucher_sales",
        )
    await refunded(api, user, booking_id, "r1", 500_000)
    outcome = await refund_result(temporal_client, booking_id, "r1")
    assert (outcome.points_clawed_back, outcome.debt_recorded) == (50, 450)
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["available"], wallet["debt_points"]) == (0, 0, 450)
    # The tier credit goes at the refund, owed points included: 500 - 50 taken - 450 owed.
    assert (wallet["lifetime_points"], wallet["tier_status"]["trailing_12m_points"]) == (0, 0)

    # The next earn (600 points) repays the debt first; the repayment moves points, not tier
    # credit (the refund took it already): lifetime and trailing points are the 600 kept.
    other = f"bk-{uuid.uuid4().hex[:12]}"
    await paid(api, user, other, 600_000)
    state = await accrual_result(temporal_client, other)
    assert state.outcome is not None and state.outcome.debt_repaid == 450
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["debt_points"], wallet["lifetime_points"]) == (150, 0, 600)
    assert wallet["tier_status"]["trailing_12m_points"] == 600
    assert (await postings(engine, user))[-2:] == [("earn", 600, other), ("clawback", -450, None)]
    await save_history("refund_debt", f"refund-{booking_id}-r1")
    await save_history("accrual_repays_debt", f"accrual-{other}")


async def test_a_refund_whose_points_were_all_spent_still_takes_the_tier_credit_back(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    user = new_user_id()
    await paid(api, user, booking_id, 800_000)
    await accrual_result(temporal_client, booking_id)
    async with engine.begin() as conn:  # every point spent before the refund
        await ledger.burn(
            conn,
            user_id=user,
            points=800,
            idempotency_key=f"test-voucher:{user}",
            counter_account="voucher_sales",
        )
    await refunded(api, user, booking_id, "r1", 800_000)
    outcome = await refund_result(temporal_client, booking_id, "r1")
    assert (outcome.points_clawed_back, outcome.debt_recorded) == (0, 800)
    # Nothing to take from the balance: the clawback row takes 0 points and the tier credit.
    assert (await postings(engine, user))[-1] == ("clawback", 0, booking_id)
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["debt_points"], wallet["lifetime_points"]) == (0, 800, 0)
    assert wallet["tier_status"]["trailing_12m_points"] == 0


async def test_cancellation_is_a_full_refund(
    api, worker, temporal_client, engine, make_wallet, booking_id
):
    user = await make_wallet(100)
    await redeem(engine, user, booking_id, 100)
    await paid(api, user, booking_id, 300_000)
    await accrual_result(temporal_client, booking_id)
    response = await api.event(type="booking_cancelled", booking_id=booking_id, user_id=user)
    assert response.json()["workflow_id"] == f"refund-{booking_id}-cancel"
    outcome = await refund_result(temporal_client, booking_id, "cancel")
    assert (outcome.points_returned, outcome.points_clawed_back) == (100, 300)
    assert (await api.wallet(user))["balance"] == 100
