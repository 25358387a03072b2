"""Schemathesis against the service's own OpenAPI document, over HTTP to a real uvicorn server.

Every operation that needs only PostgreSQL is called with generated input (valid and invalid)
as each kind of caller: a customer on their own wallet, the booking service, an admin. No
answer may be a 5xx, and every answer must be documented: its status code, content type,
headers and body schema.

The server has a database of its own (migrated here): admins fuzzing tiers, campaigns and the
voucher catalog must not change the configuration other tests of the session rely on.

Left out: operations that start or signal Temporal workflows (redeem, confirm, release, the
redemption status, voucher purchase, booking events, the Stripe webhook). Valid input there
needs a worker, Temporal and localstripe per call; tests/redemption and tests/faults cover them.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import devstack
from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings

# Left out (see the module docstring): each needs a Temporal worker for valid input.
TEMPORAL_OPERATIONS = (
    r"^/wallets/\{userId\}/(redeem|confirm|release)$",
    r"^/wallets/\{userId\}/redemptions/",
    r"^/booking-events$",
    r"^/webhooks/",
)

schema = (
    schemathesis.openapi.from_dict(create_app(Settings(environment="test")).openapi())
    .exclude(path_regex="|".join(TEMPORAL_OPERATIONS))
    .exclude(method="POST", path="/wallets/{userId}/vouchers")
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CUSTOMER = f"fuzz-customer-{uuid.uuid4().hex[:8]}"
# Examples per operation and role; FUZZ_EXAMPLES=200 for a deeper hunt than the suite's.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))


class ThreadedServer(uvicorn.Server):
    """uvicorn in a thread of this process, on a free loopback port, with its own loop."""

    def install_signal_handlers(self) -> None:  # the test runner keeps its own
        pass

    def __enter__(self) -> ThreadedServer:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def fuzz_settings(embedded_postgres: devstack.EmbeddedPostgres) -> Settings:
    url = embedded_postgres.ensure_database("loyalty_schemathesis")
    devstack.run_migrations(url)
    return Settings(environment="test", database_url=url)


@pytest.fixture(scope="module")
def base_url(fuzz_settings: Settings) -> Iterator[str]:
    port = devstack.free_port()
    config = uvicorn.Config(
        create_app(fuzz_settings), host="127.0.0.1", port=port, log_level="warning"
    )
    with ThreadedServer(config):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def role_headers(fuzz_settings: Settings, base_url: str) -> dict[str, dict[str, str]]:
    def bearer(sub: str, scope: str) -> dict[str, str]:
        token = mint_token(fuzz_settings, sub=sub, scopes=[scope], ttl=3600)
        return {"Authorization": f"Bearer {token}"}

    headers = {
        "customer": bearer(CUSTOMER, SCOPE_CUSTOMER),
        "service": bearer("booking-service", SCOPE_SERVICE),
        "admin": bearer("fuzz-admin", SCOPE_ADMIN),
    }
    # The customer's wallet exists and has a history, so their reads answer 200 with a body.
    response = httpx.post(
        f"{base_url}/wallets/{CUSTOMER}/earn",
        json={"booking_id": "fuzz-seed", "amount_paid": 2_000_000, "currency": "VND"},
        headers=headers["service"],
    )
    assert response.status_code in (200, 201), response.text
    return headers


@pytest.mark.slow
@pytest.mark.parametrize("role", ["customer", "service", "admin"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_documented_answers(
    case: Case, role: str, base_url: str, role_headers: dict[str, dict[str, str]]
) -> None:
    if role == "customer" and case.path_parameters and "userId" in case.path_parameters:
        case.path_parameters["userId"] = CUSTOMER  # a customer only ever calls their own wallet
    case.call_and_validate(base_url=base_url, headers=role_headers[role], checks=CHECKS)


def test_a_body_that_is_not_text_gets_the_documented_422(
    base_url: str, role_headers: dict[str, dict[str, str]]
) -> None:
    """Found by the test above: FastAPI answered such a body with an undocumented bare 400."""
    response = httpx.post(
        f"{base_url}/wallets/{CUSTOMER}/earn",
        content=b'{"booking_id": "\xff"}',
        headers={**role_headers["service"], "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
