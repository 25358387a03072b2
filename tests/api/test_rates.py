"""GET and POST /rates: the table of point rates, which admins add to and nobody rewrites.

Rates written here start centuries ahead (each at an instant of its own), so they value none of
the postings of the tests that share the database; tests/ledger/test_values.py has one that
starts at once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.api.snapshots import snapshot


def _far_ahead() -> str:
    start = datetime(2900, 1, 1, tzinfo=UTC) + timedelta(seconds=random.randrange(10**9))
    return start.isoformat()


def _rate(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "starts_at": _far_ahead(),
        "currency": "VND",
        "point_value_minor": "1.25",
    }
    body.update(overrides)
    return body


async def test_an_admin_adds_a_rate_and_a_retry_replays_it(api):
    body = _rate()
    created = await api.http.post("/rates", headers=api.admin, json=body)
    assert created.status_code == 201, created.text
    rate = created.json()
    assert rate["point_value_minor"] == "1.25"
    assert rate["in_force"] is False
    assert rate["created_by"] == "admin-1"
    again = await api.http.post("/rates", headers=api.admin, json=body)
    assert again.status_code == 200 and again.json() == rate
    # Written as 1.250 it is the same rate.
    same = await api.http.post(
        "/rates", headers=api.admin, json={**body, "point_value_minor": "1.250"}
    )
    assert same.status_code == 200 and same.json()["rate_id"] == rate["rate_id"]
    listed = await api.http.get("/rates", headers=api.admin)
    assert listed.status_code == 200
    assert rate in listed.json()


async def test_another_rate_at_the_same_start_is_a_conflict(api):
    body = _rate()
    assert (await api.http.post("/rates", headers=api.admin, json=body)).status_code == 201
    other = await api.http.post(
        "/rates", headers=api.admin, json={**body, "point_value_minor": "2"}
    )
    assert other.status_code == 409
    assert other.json()["code"] == "rate_exists"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"starts_at": "2020-01-01T00:00:00Z"}, "may not start in the past"),
        ({"currency": "USD"}, "point rates are in VND"),
    ],
)
async def test_a_rate_in_the_past_or_another_currency_is_refused(api, engine, change, message):
    before = await snapshot(engine)
    response = await api.http.post("/rates", headers=api.admin, json=_rate(**change))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert message in response.json()["message"]
    assert await snapshot(engine) == before


async def test_a_start_a_moment_ago_is_in_the_past(api):
    just_now = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    response = await api.http.post("/rates", headers=api.admin, json=_rate(starts_at=just_now))
    assert response.status_code == 422


@pytest.mark.parametrize(
    "value",
    ["0", "0.000000", "-1", "1.1234567", "0.0000001", "1000000", "1e3", " 1", "01", 1, 1.5, None],
)
async def test_a_point_value_must_be_positive_decimal_text(api, value):
    response = await api.http.post("/rates", headers=api.admin, json=_rate(point_value_minor=value))
    assert response.status_code == 422, (value, response.text)
    [error] = response.json()["details"]["errors"]
    assert error["loc"] == ["body", "point_value_minor"]


@pytest.mark.parametrize("value", ["1", "0.5", "0.50", "0.000001", "0.010010", "999999.999999"])
async def test_the_bounds_of_a_point_value_are_taken(api, value):
    response = await api.http.post("/rates", headers=api.admin, json=_rate(point_value_minor=value))
    assert response.status_code == 201, response.text
    assert response.json()["point_value_minor"] == str(Decimal(value).normalize())


async def test_only_admins_see_and_set_rates(api, auth, user_id):
    for headers in (api.service, api.customer(user_id)):
        assert (await api.http.get("/rates", headers=headers)).status_code == 403
        assert (await api.http.post("/rates", headers=headers, json=_rate())).status_code == 403
    assert (await api.http.get("/rates")).status_code == 401


async def test_a_campaign_takes_and_drops_its_own_rate(api):
    now = datetime.now(UTC)
    body = {
        "campaign_id": f"rate-{random.randrange(10**9)}",
        "name": "Valued",
        "kind": "bonus",
        "bonus_points": 10,
        "product_types": ["nowhere"],
        "starts_at": (now + timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        "point_value_minor": "0.75",
    }
    created = await api.http.post("/campaigns", headers=api.admin, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["point_value_minor"] == "0.75"
    # The same body replays it; another rate under the same id is another campaign.
    assert (await api.http.post("/campaigns", headers=api.admin, json=body)).status_code == 200
    other = {**body, "point_value_minor": "0.8"}
    assert (await api.http.post("/campaigns", headers=api.admin, json=other)).status_code == 409
    url = f"/campaigns/{body['campaign_id']}"
    bad = await api.http.patch(url, headers=api.admin, json={"point_value_minor": "0"})
    assert bad.status_code == 422
    dropped = await api.http.patch(url, headers=api.admin, json={"point_value_minor": None})
    assert dropped.status_code == 200 and dropped.json()["point_value_minor"] is None
    kept = await api.http.patch(url, headers=api.admin, json={"name": "Renamed"})
    assert kept.json()["point_value_minor"] is None
