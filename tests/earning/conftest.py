"""Earning fixtures: settings pointing at the session's PostgreSQL and Temporal dev server with
the test's own task queue (the API and the worker share them), an in-process worker built as
worker.py builds it, the API in process, a local notification receiver, and small helpers;
histories saved for the replay test."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities import Dependencies
from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings
from loyalty.earning.contracts import AccrualState, RefundOutcome
from tests.api.conftest import serve
from tests.harness.histories import SaveHistory, history_saver
from worker import build_worker

HISTORIES = Path(__file__).parent / "histories"
# `EARNING_SAVE_HISTORIES=1 pytest tests/earning` rewrites the histories the replay test checks
# (tests/earning/histories/*.json) from the tests that call `save_history`.
SAVE_HISTORIES_ENV = "EARNING_SAVE_HISTORIES"


@dataclass
class Receiver:
    """A notification service on a local port; fails the first `fail_first` requests."""

    url: str = ""
    fail_first: int = 0
    attempts: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    def keys(self, user_id: str) -> list[str]:
        return [r["key"] for r in self.received if r["user_id"] == user_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state.attempts += 1
                failing = state.attempts <= state.fail_first
                if not failing:
                    state.received.append({**body, "key": self.headers["Idempotency-Key"]})
            self.send_response(503 if failing else 202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


@pytest.fixture
def pending_seconds() -> int:
    """Override in a test module (or with indirect parametrisation) for pending points."""
    return 0


@pytest.fixture
def settings(
    database_url: str,
    temporal_address: str,
    task_queue: str,
    receiver: Receiver,
    pending_seconds: int,
) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_task_queue=task_queue,
        notify_url=receiver.url,
        earn_pending_seconds=pending_seconds,
        accrual_wait_for_payment_seconds=120,
    )


@pytest.fixture
async def worker(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    deps = Dependencies(settings=settings, engine=engine)
    async with build_worker(temporal_client, deps, settings.temporal_task_queue):
        yield


@dataclass(frozen=True)
class Api:
    http: httpx.AsyncClient
    settings: Settings

    def _bearer(self, sub: str, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, sub=sub, scopes=[scope])}"}

    @property
    def service(self) -> dict[str, str]:
        return self._bearer("booking-service", SCOPE_SERVICE)

    @property
    def admin(self) -> dict[str, str]:
        return self._bearer("admin-1", SCOPE_ADMIN)

    def customer(self, user_id: str) -> dict[str, str]:
        return self._bearer(user_id, SCOPE_CUSTOMER)

    async def event(self, **event: Any) -> httpx.Response:
        event.setdefault("event_id", f"ev-{uuid.uuid4().hex[:12]}")
        return await self.http.post("/booking-events", headers=self.service, json={"event": event})

    async def paid(
        self, user_id: str, booking_id: str, amount: int, **extra: Any
    ) -> httpx.Response:
        return await self.event(
            type="payment_succeeded",
            booking_id=booking_id,
            user_id=user_id,
            payment_id=extra.pop("payment_id", f"pi-{booking_id}"),
            amount_paid=amount,
            currency="VND",
            **extra,
        )

    async def refunded(
        self, user_id: str, booking_id: str, refund_id: str, amount: int, **extra: Any
    ) -> httpx.Response:
        return await self.event(
            type="booking_refunded",
            booking_id=booking_id,
            user_id=user_id,
            refund_id=refund_id,
            refund_amount=amount,
            currency="VND",
            **extra,
        )

    async def wallet(self, user_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/wallets/{user_id}", headers=self.customer(user_id))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture
async def api(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Api]:
    async with serve(create_app(settings)) as http:
        yield Api(http, settings)


@pytest.fixture
def save_history(temporal_client: Client) -> SaveHistory:
    """`await save_history("accrual_posted", f"accrual-{booking_id}")` stores the run's history
    for the replay test when EARNING_SAVE_HISTORIES=1 (a no-op otherwise)."""
    return history_saver(temporal_client, HISTORIES)


@pytest.fixture
def booking_id() -> str:
    return f"bk-{uuid.uuid4().hex[:12]}"


async def accrual_result(client: Client, booking_id: str, within: float = 30) -> AccrualState:
    handle = client.get_workflow_handle(f"accrual-{booking_id}", result_type=AccrualState)
    return await _bounded(handle.result(), within)


async def refund_result(
    client: Client, booking_id: str, refund_id: str, within: float = 30
) -> RefundOutcome:
    handle = client.get_workflow_handle(
        f"refund-{booking_id}-{refund_id}", result_type=RefundOutcome
    )
    return await _bounded(handle.result(), within)


async def _bounded(awaitable: Any, within: float) -> Any:
    import asyncio

    async with asyncio.timeout(within):
        return await awaitable


async def postings(engine: AsyncEngine, user_id: str) -> list[tuple[str, int, str | None]]:
    """(type, amount, booking_id) of every posting of the user's wallet, oldest first, without
    the test's seed."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT t.type, t.amount, t.booking_id FROM wallet_transactions t "
                    "JOIN wallets w ON w.wallet_id = t.wallet_id WHERE w.user_id = :u "
                    "AND t.idempotency_key NOT LIKE 'test-seed:%' ORDER BY t.tx_id"
                ),
                {"u": user_id},
            )
        ).all()
    return [(r[0], int(r[1]), r[2]) for r in rows]


async def earn_rows(engine: AsyncEngine, booking_id: str) -> list[tuple[int, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT amount, metadata FROM wallet_transactions "
                    "WHERE booking_id = :b AND type = 'earn' ORDER BY tx_id"
                ),
                {"b": booking_id},
            )
        ).all()
    return [(int(r[0]), r[1]) for r in rows]
