"""Redemption saga fixtures: settings pointing at the session's PostgreSQL, Temporal dev server
and localstripe; an in-process worker built exactly as worker.py builds it, on the test's own
task queue; a Stripe client for playing the customer; histories saved for the replay test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import stripe
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

import devstack
from activities import Dependencies
from api.app import create_app
from api.auth import SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings
from loyalty.core.stripe_client import make_stripe_client
from tests.harness.histories import SaveHistory, history_saver
from worker import build_worker

HISTORIES = Path(__file__).parent / "histories"
# `REDEMPTION_SAVE_HISTORIES=1 pytest tests/redemption` rewrites the histories the replay test
# checks (tests/redemption/histories/*.json) from the tests that call `save_history`.
SAVE_HISTORIES_ENV = "REDEMPTION_SAVE_HISTORIES"


@pytest.fixture
def settings(
    database_url: str, temporal_address: str, localstripe_url: str, task_queue: str
) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        stripe_api_key="sk_test_redemption",
        stripe_api_base=localstripe_url,
        temporal_task_queue=task_queue,
    )


@pytest.fixture
def stripe_client(settings: Settings) -> stripe.StripeClient:
    return make_stripe_client(settings)


@pytest.fixture
async def worker(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    deps = Dependencies(settings=settings, engine=engine)
    async with build_worker(temporal_client, deps, settings.temporal_task_queue):
        yield


@pytest.fixture
def booking_id() -> str:
    return f"bk-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def save_history(temporal_client: Client) -> SaveHistory:
    """`await save_history("paid_captured", workflow_id)` stores the run's history for the replay
    test when REDEMPTION_SAVE_HISTORIES=1 (a no-op otherwise)."""
    return history_saver(temporal_client, HISTORIES)


@dataclass(frozen=True)
class Api:
    """The API listening on a real port (localstripe posts its webhooks there)."""

    url: str
    http: httpx.AsyncClient
    service: dict[str, str]
    settings: Settings

    def customer(self, user_id: str) -> dict[str, str]:
        token = mint_token(self.settings, sub=user_id, scopes=[SCOPE_CUSTOMER])
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(settings: Settings, localstripe_url: str) -> AsyncIterator[Api]:
    """uvicorn in this process on a free port, and localstripe's webhook pointed at it (one
    webhook id for all tests, re-pointed each time, so old servers get no deliveries)."""
    port = devstack.free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post(
            f"{localstripe_url}/_config/webhooks/redemption-tests",
            data=devstack.localstripe_webhook_fields(
                f"{url}/webhooks/stripe", settings.stripe_webhook_secret
            ),
        )
        answer.raise_for_status()
        token = mint_token(settings, sub="booking-service", scopes=[SCOPE_SERVICE])
        yield Api(url, http, {"Authorization": f"Bearer {token}"}, settings)
    server.should_exit = True
    await serving
