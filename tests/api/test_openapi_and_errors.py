"""The OpenAPI document tells the truth about every endpoint; every error is JSON."""

from __future__ import annotations

from fastapi import APIRouter

from api.app import create_app
from tests.harness.api import in_process

ENDPOINTS = {
    ("get", "/health"): None,
    ("get", "/wallets/{userId}"): ["wallet:self", "loyalty:service", "loyalty:admin"],
    ("get", "/wallets/{userId}/transactions"): ["wallet:self", "loyalty:service", "loyalty:admin"],
    ("post", "/wallets/{userId}/transactions"): ["loyalty:admin"],
    ("post", "/wallets/{userId}/earn"): ["loyalty:service"],
    ("get", "/customers"): ["loyalty:admin"],
    ("post", "/campaigns"): ["loyalty:admin"],
    ("get", "/campaigns"): ["loyalty:admin", "loyalty:service"],
    ("get", "/campaigns/{campaignId}"): ["loyalty:admin", "loyalty:service"],
    ("post", "/booking-events"): ["loyalty:service"],
    ("get", "/reconciliation/findings"): ["loyalty:admin"],
    ("post", "/reconciliation/runs"): ["loyalty:admin"],
}
# Callable without a bearer token (webhooks authenticate by signature).
PUBLIC_PATHS = {"/health"}


async def test_openapi_lists_every_endpoint_with_its_security(api):
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    operations = {
        (method, path): op for path, ops in schema["paths"].items() for method, op in ops.items()
    }
    assert set(ENDPOINTS) <= set(operations)
    for key, scopes in ENDPOINTS.items():
        op = operations[key]
        if scopes is None:
            assert "security" not in op
        else:
            assert op["security"] == [{"bearerAuth": [s]} for s in scopes], key
    # Every operation, ours and later routers', is described and, unless public, secured.
    for (method, path), op in operations.items():
        assert op["summary"] and op["description"], (method, path)  # the one-line docstring
        if path not in PUBLIC_PATHS and not path.startswith("/webhooks/"):
            assert op["security"], (method, path)
            assert all(list(req) == ["bearerAuth"] and req["bearerAuth"] for req in op["security"])
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # Two models of one name get module-qualified names (loyalty__x__schemas__Name) in clients.
    assert [name for name in schema["components"]["schemas"] if "__" in name] == []
    adjust = operations[("post", "/wallets/{userId}/transactions")]
    assert {p["name"] for p in adjust["parameters"]} == {"userId", "Idempotency-Key"}
    assert {"201", "200", "401", "403", "404", "409", "422"} <= set(adjust["responses"])
    history = operations[("get", "/wallets/{userId}/transactions")]
    assert {p["name"] for p in history["parameters"]} == {
        "userId",
        "cursor",
        "limit",
        "type",
        "since",
        "until",
        "booking_id",
    }


async def test_no_float_in_any_schema(api):
    schema = (await api.http.get("/openapi.json")).json()
    assert '"type": "number"' not in str(schema).replace("'", '"')


async def test_unknown_route_and_method_are_json(api, auth):
    missing = await api.http.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Not Found"}
    wrong = await api.http.delete("/health")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


async def test_unexpected_errors_are_500_without_details(settings, monkeypatch):
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        """Fails."""
        raise RuntimeError("secret internal detail at /srv/app.py line 12")

    monkeypatch.setattr("api.app.ROUTERS", [boom])
    async with in_process(create_app(settings), raise_app_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "message": "internal server error"}
    assert "secret" not in response.text
