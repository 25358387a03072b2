"""Accrual end to end: booking events over HTTP, AccrualWorkflow on a real Temporal dev server,
postings in real PostgreSQL, notifications at a local receiver."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.earning.helpers import accrual_result, earn_rows, paid, postings


async def test_payment_earns_once_and_notifies_once(
    api, worker, temporal_client, engine, receiver, new_user_id, booking_id, save_history
):
    user = new_user_id()
    receiver.fail_first = 2  # the notification service fails twice before it answers
    first = await paid(api, user, booking_id, 149_999, event_id=f"ev-{booking_id}")
    assert first.status_code == 202, first.text
    assert first.json() == {
        "event_id": f"ev-{booking_id}",
        "duplicate": False,
        "workflow_id": f"accrual-{booking_id}",
        "outcome": "accepted",
    }
    state = await accrual_result(temporal_client, booking_id)
    assert state.status == "posted"
    assert state.outcome is not None and state.outcome.points == 149

    # Redelivered: the same event (same id), then the same payment under a new event id.
    again = await paid(api, user, booking_id, 149_999, event_id=f"ev-{booking_id}")
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    later = await paid(api, user, booking_id, 149_999)
    assert (later.status_code, later.json()["outcome"]) == (202, "already_finished")

    assert await postings(engine, user) == [("earn", 149, booking_id)]
    [(points, metadata)] = await earn_rows(engine, booking_id)
    assert points == 149
    assert metadata["rules"] == [
        {"rule": "base", "points": 149, "detail": "149999 paid at 1 point per 1000"}
    ]
    assert metadata["total"] == 149 and metadata["tier"] == "bronze"
    wallet = await api.wallet(user)
    assert (wallet["balance"], wallet["pending_points"], wallet["debt_points"]) == (149, 0, 0)
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]
    assert receiver.attempts == 3
    await save_history("accrual_posted", f"accrual-{booking_id}")


async def test_same_event_id_with_another_body_is_409(api, worker, new_user_id, booking_id):
    user = new_user_id()
    assert (
        await paid(api, user, booking_id, 10_000, event_id=f"e-{booking_id}")
    ).status_code == 202
    response = await paid(api, user, booking_id, 20_000, event_id=f"e-{booking_id}")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"


async def test_earn_endpoint_and_payment_event_share_one_posting(
    api, worker, temporal_client, engine, receiver, new_user_id, booking_id
):
    user = new_user_id()
    body = {
        "booking_id": booking_id,
        "payment_id": f"pi-{booking_id}",
        "amount_paid": 250_000,
        "currency": "VND",
    }
    direct = await api.http.post(f"/wallets/{user}/earn", headers=api.service, json=body)
    assert direct.status_code == 201, direct.text
    assert direct.json()["points"] == 250
    assert (await paid(api, user, booking_id, 250_000)).status_code == 202
    state = await accrual_result(temporal_client, booking_id)
    assert state.outcome is not None
    assert (state.outcome.status, state.outcome.points, state.outcome.replayed) == (
        "posted",
        250,
        True,
    )
    assert await postings(engine, user) == [("earn", 250, booking_id)]
    # The endpoint put the notification in the outbox; the workflow delivers it, once.
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]


async def test_points_only_on_money_paid_with_confirmation_facts(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    """The booking service reports the money paid (the points part earns nothing); a
    confirmation that carries the amount earns without a separate payment event."""
    user = new_user_id()
    response = await api.event(
        type="booking_confirmed",
        booking_id=booking_id,
        user_id=user,
        amount_paid=1_999,
        currency="VND",
    )
    assert response.status_code == 202, response.text
    state = await accrual_result(temporal_client, booking_id)
    assert state.outcome is not None and state.outcome.points == 1
    assert await postings(engine, user) == [("earn", 1, booking_id)]


async def test_tier_upgrade_at_once_on_accrual(
    api, worker, temporal_client, make_wallet, receiver, booking_id
):
    user = await make_wallet(4_990)
    assert (await api.wallet(user))["tier"] == "bronze"
    assert (await paid(api, user, booking_id, 10_000)).status_code == 202
    await accrual_result(temporal_client, booking_id)
    wallet = await api.wallet(user)
    assert (wallet["tier"], wallet["lifetime_points"], wallet["balance"]) == (
        "silver",
        5_000,
        5_000,
    )
    kinds = sorted(r["kind"] for r in receiver.received if r["user_id"] == user)
    assert kinds == ["points_earned", "tier_changed"]
    tier_note = next(r for r in receiver.received if r["kind"] == "tier_changed")
    assert tier_note["payload"]["to_tier"] == "silver"


async def test_cancelled_before_payment_earns_nothing(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    user = new_user_id()
    cancel = await api.event(type="booking_cancelled", booking_id=booking_id, user_id=user)
    assert cancel.status_code == 202, cancel.text
    state = await accrual_result(temporal_client, booking_id)
    assert state.status == "cancelled"
    late = await paid(api, user, booking_id, 500_000)
    assert late.json()["outcome"] == "already_finished"
    assert await postings(engine, user) == []


async def test_payment_below_one_point_posts_nothing(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    user = new_user_id()
    await paid(api, user, booking_id, 999)
    state = await accrual_result(temporal_client, booking_id)
    assert state.status == "nothing_to_earn"
    assert await postings(engine, user) == []


async def test_other_currency_is_refused(api, worker, engine, new_user_id, booking_id):
    user = new_user_id()
    response = await api.event(
        type="payment_succeeded",
        booking_id=booking_id,
        user_id=user,
        payment_id="pi-x",
        amount_paid=10_000,
        currency="USD",
    )
    assert response.status_code == 422
    async with engine.connect() as conn:
        seen = (
            await conn.execute(
                text("SELECT count(*) FROM booking_events WHERE booking_id = :b"), {"b": booking_id}
            )
        ).scalar_one()
    assert seen == 0


async def test_service_scope_required(api, new_user_id):
    user = new_user_id()
    body = {
        "event": {
            "type": "payment_succeeded",
            "event_id": str(uuid.uuid4()),
            "booking_id": "bk-1",
            "user_id": user,
            "payment_id": "pi-1",
            "amount_paid": 1_000,
            "currency": "VND",
        }
    }
    response = await api.http.post("/booking-events", headers=api.customer(user), json=body)
    assert response.status_code == 403
    assert (await api.http.post("/booking-events", json=body)).status_code == 401
