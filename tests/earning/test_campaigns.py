"""Campaign admin API (create, list, update, end) and the campaign bonus on a booking's earn.
Every campaign here filters on a product type of its own, so it never touches other tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.earning.helpers import accrual_result, earn_rows, paid


def _campaign(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    body: dict[str, object] = {
        "campaign_id": f"c-{uuid.uuid4().hex[:10]}",
        "name": "Double points",
        "kind": "multiplier",
        "multiplier_pct": 200,
        "product_types": [f"hotel-{uuid.uuid4().hex[:8]}"],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    body.update(overrides)
    return body


async def test_campaign_bonus_on_accrual_is_recorded_in_metadata(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    double = _campaign()
    product = double["product_types"][0]
    bonus = _campaign(
        kind="bonus",
        multiplier_pct=None,
        bonus_points=50,
        product_types=[product],
        cap_points_per_booking=30,
        name="Welcome bonus",
    )
    bonus.pop("multiplier_pct")
    for body in (double, bonus):
        response = await api.http.post("/campaigns", headers=api.admin, json=body)
        assert response.status_code == 201, response.text
    user = new_user_id()
    await paid(api, user, booking_id, 150_500, product_type=product)
    state = await accrual_result(temporal_client, booking_id)
    assert state.outcome is not None and state.outcome.points == 150 + 150 + 30
    [(points, metadata)] = await earn_rows(engine, booking_id)
    assert points == 330
    lines = sorted(metadata["rules"], key=lambda line: line["rule"])
    assert [(line["rule"], line["points"]) for line in lines] == sorted(
        [
            ("base", 150),
            (f"campaign:{double['campaign_id']}", 150),
            (f"campaign:{bonus['campaign_id']}", 30),
        ]
    )
    assert metadata["rule"] == "campaign" and metadata["total"] == 330

    # Another product type gets the base only.
    other = f"bk-{uuid.uuid4().hex[:12]}"
    await paid(api, user, other, 150_500, product_type="flight")
    assert (await accrual_result(temporal_client, other)).outcome.points == 150


async def test_a_campaigns_validity_sets_how_long_its_earns_points_last(
    api, worker, temporal_client, engine, new_user_id, booking_id
):
    """The most generous campaign that added to an earn sets its lot's validity; an earn no
    campaign with a validity added to gets the default."""
    short = _campaign(points_validity_months=3)
    product = short["product_types"][0]
    longer = _campaign(
        kind="bonus", bonus_points=10, product_types=[product], points_validity_months=6
    )
    longer.pop("multiplier_pct")
    for body in (short, longer):
        response = await api.http.post("/campaigns", headers=api.admin, json=body)
        assert response.status_code == 201, response.text
        assert response.json()["points_validity_months"] == body["points_validity_months"]
    user = new_user_id()
    await paid(api, user, booking_id, 100_000, product_type=product)
    assert (await accrual_result(temporal_client, booking_id)).outcome.points == 210
    other = f"bk-{uuid.uuid4().hex[:12]}"
    await paid(api, user, other, 100_000, product_type="flight")
    assert (await accrual_result(temporal_client, other)).outcome.points == 100
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT t.booking_id, l.points, "
                "(SELECT min(m) FROM generate_series(0, 48) m "
                " WHERE l.created_at + make_interval(months => m) = l.expires_at) AS months "
                "FROM point_lots l JOIN wallet_transactions t ON t.tx_id = l.opened_by_tx_id "
                "WHERE t.booking_id IN (:a, :b)"
            ),
            {"a": booking_id, "b": other},
        )
        lots = {b: (points, months) for b, points, months in rows}
    assert lots == {booking_id: (210, 6), other: (100, 24)}
    [(_, metadata)] = await earn_rows(engine, booking_id)
    assert metadata["lot_validity_months"] == 6


async def test_campaign_admin_lifecycle(api, worker, temporal_client, new_user_id):
    body = _campaign()
    created = await api.http.post("/campaigns", headers=api.admin, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "running"
    replay = await api.http.post("/campaigns", headers=api.admin, json=body)
    assert replay.status_code == 200
    conflict = await api.http.post(
        "/campaigns", headers=api.admin, json={**body, "multiplier_pct": 300}
    )
    assert conflict.status_code == 409

    cid = body["campaign_id"]
    listed = await api.http.get("/campaigns?status=running", headers=api.service)
    assert cid in [c["campaign_id"] for c in listed.json()]
    updated = await api.http.patch(
        f"/campaigns/{cid}", headers=api.admin, json={"multiplier_pct": 150}
    )
    assert updated.status_code == 200 and updated.json()["multiplier_pct"] == 150

    user = new_user_id()
    booking = f"bk-{uuid.uuid4().hex[:12]}"
    await paid(api, user, booking, 100_000, product_type=body["product_types"][0])
    assert (await accrual_result(temporal_client, booking)).outcome.points == 150

    ended = await api.http.post(f"/campaigns/{cid}/end", headers=api.admin)
    assert ended.status_code == 200 and ended.json()["status"] == "finished"
    assert ended.json()["ended_at"] is not None
    later = f"bk-{uuid.uuid4().hex[:12]}"
    await paid(api, user, later, 100_000, product_type=body["product_types"][0])
    assert (await accrual_result(temporal_client, later)).outcome.points == 100
    finished = await api.http.patch(f"/campaigns/{cid}", headers=api.admin, json={"name": "x"})
    assert finished.status_code == 422


async def test_campaign_input_is_validated_and_admin_only(api, new_user_id):
    for bad in (
        _campaign(multiplier_pct=100),
        _campaign(kind="bonus"),
        _campaign(ends_at=datetime(2020, 1, 1, tzinfo=UTC).isoformat()),
        _campaign(starts_at="2026-01-01T00:00:00"),  # no time zone
        {**_campaign(), "unknown": 1},
    ):
        response = await api.http.post("/campaigns", headers=api.admin, json=bad)
        assert response.status_code == 422, bad
    assert (
        await api.http.post("/campaigns", headers=api.service, json=_campaign())
    ).status_code == 403
    assert (await api.http.get("/campaigns/nope", headers=api.admin)).status_code == 404
