"""Inputs that once answered 500 or stored a row a later read could not handle: each is now a 4xx
naming the problem, and changes nothing."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.body_limits import MAX_BODY_BYTES, json_depth_exceeds
from tests.api.snapshots import snapshot


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


BAD_CURSORS = [
    ("/wallets/{user}/transactions", _token("tx:" + "9" * 30)),  # beyond 64 bits
    ("/wallets/{user}/transactions", _token("tx:1\x00")),
    ("/wallets/{user}/transactions", _token("tx:-1")),
    ("/customers", _token("customer:a\x00b")),
    ("/customers", "%%%"),
]


@pytest.mark.parametrize(("path", "cursor"), BAD_CURSORS)
async def test_bad_cursors_are_400(api, auth, make_wallet, path, cursor):
    user = await make_wallet(10)
    response = await api.http.get(
        path.format(user=user), params={"cursor": cursor}, headers=auth.admin()
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_cursor"


EDGE_INSTANTS = [
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    "0001-01-01T00:00:00Z",  # storable by PostgreSQL but the lowest Python holds: fine either way
]


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/wallets/{user}/transactions", "since"),
        ("/wallets/{user}/transactions", "until"),
        ("/customers", "active_since"),
        ("/customers", "inactive_since"),
    ],
)
async def test_calendar_edges_never_500(api, auth, make_wallet, path, field, instant):
    user = await make_wallet(10)
    response = await api.http.get(
        path.format(user=user), params={field: instant}, headers=auth.admin()
    )
    if instant.endswith("Z"):
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"


async def test_campaign_name_with_nul_is_422(api, auth):
    now = datetime.now(UTC)
    body = {
        "campaign_id": f"c-{uuid.uuid4().hex[:10]}",
        "name": "Double\x00points",
        "kind": "multiplier",
        "multiplier_pct": 200,
        "product_types": [f"hotel-{uuid.uuid4().hex[:8]}"],
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    response = await api.http.post("/campaigns", headers=auth.admin(), json=body)
    assert response.status_code == 422, response.text
    got = await api.http.get(f"/campaigns/{body['campaign_id']}", headers=auth.admin())
    assert got.status_code == 404


@pytest.mark.parametrize(
    "field", ["name", "rank", "threshold", "basis", "earn_multiplier_pct", "benefits"]
)
async def test_tier_fields_that_cannot_be_empty_refuse_null(api, auth, field):
    # Validation comes before the lookup: an unknown tier shows it without touching the ladder.
    response = await api.http.patch("/tiers/no-such-tier", headers=auth.admin(), json={field: None})
    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"][:2] for e in response.json()["details"]["errors"]]


async def test_tier_caps_may_be_cleared_with_null(api, auth):
    for field in ("redemption_cap_pct", "redemption_cap_points"):
        response = await api.http.patch(
            "/tiers/no-such-tier", headers=auth.admin(), json={field: None}
        )
        assert response.status_code == 404, response.text


async def test_options_on_tier_order_names_its_own_methods(api, auth):
    response = await api.http.options("/tiers/order", headers=auth.admin())
    assert response.status_code == 405
    assert "PATCH" not in response.headers["allow"]
    assert "PUT" in response.headers["allow"]


async def test_a_deeply_nested_body_is_refused_before_it_is_parsed(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    body = "[" * 100_000 + "]" * 100_000
    response = await api.http.post(
        f"/wallets/{user}/transactions",
        headers={**auth.admin(f"deep-{user}"), "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code in (413, 422), response.text
    assert await snapshot(engine, user) == before


async def test_the_webhook_refuses_a_deep_body_before_reading_its_signature(api):
    body = '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = await api.http.post(
        "/webhooks/stripe",
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
        content=body,
    )
    assert response.status_code == 422, response.text
    assert "nests deeper" in response.json()["message"]


async def test_an_oversized_body_is_413(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    reason = "x" * (MAX_BODY_BYTES + 1)
    response = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin(f"big-{user}"),
        json={"points": 5, "reason": reason},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "body_too_large"
    assert await snapshot(engine, user) == before


@pytest.mark.parametrize(
    ("body", "deeper"),
    [
        (b"[" * 32 + b"]" * 32, False),
        (b"[" * 33 + b"]" * 33, True),
        (b'{"a": "' + b"[" * 100 + b'"}', False),  # brackets inside a string do not nest
        (b'["\\"' + b"[" * 100 + b'"]', False),  # nor after an escaped quote
        (b"[" + b"[]," * 1000 + b"[]]", False),  # many brackets, shallow
        (b'{"k": ' * 40 + b"1" + b"}" * 40, True),
    ],
)
def test_json_depth(body, deeper):
    assert json_depth_exceeds(body) is deeper
