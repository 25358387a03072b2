"""Voucher fixtures: the API (create_app with settings naming this test's Temporal address and
task queue) over httpx ASGITransport, an in-process worker on the same task queue, dev tokens,
and small helpers to make products and read what a purchase changed.

Failure injection: `fault_worker(...)` runs a worker on which some voucher activities are
replaced by real activities registered under the same names: `FailingIssue.issue` always fails
(retryably, so the workflow's retry policy runs out exactly as it would on a real fault);
`DrainingBurn.burn` lets another writer spend the wallet just before the real burn runs (a
customer spending elsewhere between reservation and burn). Everything else (the ledger, the
reservation, the compensations) is the production code."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

import activities
from activities.vouchers import BURN, ISSUE, VoucherActivities
from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty import ledger
from loyalty.core.settings import Settings
from loyalty.vouchers.schemas import BurnPoints, IssueVoucher, PointsBurned, VoucherOut
from tests.api.conftest import serve
from tests.harness.histories import SaveHistory, history_saver
from worker import build_worker
from workflows.registry import WORKFLOWS

Headers = dict[str, str]

HISTORIES = Path(__file__).parent / "histories"
# `VOUCHERS_SAVE_HISTORIES=1 pytest tests/vouchers` rewrites the histories that test_replay
# checks, from the tests that call `save_history`.
SAVE_HISTORIES_ENV = "VOUCHERS_SAVE_HISTORIES"


class FailingIssue:
    """The fault-injection hook: registered as `issue_voucher` on a test worker in place of the
    real activity. It fails every attempt, as a broken code generator or pool would."""

    def __init__(self) -> None:
        self.attempts = 0

    @activity.defn(name=ISSUE)
    async def issue(self, command: IssueVoucher) -> VoucherOut:
        self.attempts += 1
        raise RuntimeError(f"injected fault: cannot issue a code for {command.purchase_id}")


class DrainingBurn:
    """Registered as `burn_voucher_points`: an adjustment takes all available points from the
    wallet, then the production burn runs (and must be refused)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._real = VoucherActivities(engine)

    @activity.defn(name=BURN)
    async def burn(self, command: BurnPoints) -> PointsBurned:
        async with self._engine.begin() as conn:
            wallet = await ledger.get_wallet(conn, command.user_id)
            if wallet.available:
                await ledger.adjust(
                    conn,
                    user_id=command.user_id,
                    points=-wallet.available,
                    reason="test: spent elsewhere meanwhile",
                    idempotency_key=f"test-drain:{command.purchase_id}",
                )
        return await self._real.burn(command)


@pytest.fixture
def settings(database_url: str, temporal_address: str, task_queue: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_task_queue=task_queue,
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings)) as client:
        yield client


@pytest.fixture
def worker_factory(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> Callable[[], Worker]:
    """A worker built exactly as worker.py builds it, on this test's task queue."""
    deps = activities.Dependencies(settings=settings, engine=engine)
    return lambda: build_worker(temporal_client, deps, settings.temporal_task_queue)


@pytest.fixture
async def worker(worker_factory: Callable[[], Worker]) -> AsyncIterator[None]:
    async with worker_factory():
        yield


@pytest.fixture
def fault_worker(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> Callable[..., AbstractAsyncContextManager[Worker]]:
    """`async with fault_worker(issue=FailingIssue().issue):` a worker on which the named
    VoucherActivities methods are replaced by the given activities (same activity names)."""

    def make(**replacements: Callable[..., Any]) -> AbstractAsyncContextManager[Worker]:
        deps = activities.Dependencies(settings=settings, engine=engine)
        real = [
            fn
            for fn in activities.build_activities(deps)
            if not (
                getattr(fn, "__name__", "") in replacements
                and isinstance(getattr(fn, "__self__", None), VoucherActivities)
            )
        ]
        return Worker(
            temporal_client,
            task_queue=settings.temporal_task_queue,
            workflows=WORKFLOWS,
            activities=[*real, *replacements.values()],
            graceful_shutdown_timeout=timedelta(seconds=5),
        )

    return make


@pytest.fixture
def save_history(temporal_client: Client) -> SaveHistory:
    """`await save_history("completed", workflow_id)` stores the latest run's history for the
    replay test when VOUCHERS_SAVE_HISTORIES=1 (a no-op otherwise)."""
    return history_saver(temporal_client, HISTORIES)


@dataclass(frozen=True)
class Auth:
    settings: Settings

    def _bearer(self, sub: str, scope: str) -> Headers:
        token = mint_token(self.settings, sub=sub, scopes=[scope])
        return {"Authorization": f"Bearer {token}"}

    def customer(self, user_id: str, key: str | None = None) -> Headers:
        headers = self._bearer(user_id, SCOPE_CUSTOMER)
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def service(self, key: str | None = None) -> Headers:
        headers = self._bearer("booking-service", SCOPE_SERVICE)
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def admin(self) -> Headers:
        return self._bearer("admin-1", SCOPE_ADMIN)


@pytest.fixture
def auth(settings: Settings) -> Auth:
    return Auth(settings)


@pytest.fixture
def make_product(http: httpx.AsyncClient, auth: Auth) -> Callable[..., Any]:
    """`await make_product(price_points=500, inventory=5)` creates a product over the admin API."""

    async def make(**fields: Any) -> dict[str, Any]:
        body = {"name": f"Voucher {uuid.uuid4().hex[:6]}", "price_points": 500, **fields}
        response = await http.post("/vouchers/products", json=body, headers=auth.admin())
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    return make


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class WalletView:
    balance: int
    held: int
    postings: list[tuple[str, int, str]]  # (type, amount, counter_account) in order


async def wallet_of(engine: AsyncEngine, user_id: str) -> WalletView:
    async with engine.connect() as conn:
        balance, held = (
            await conn.execute(
                text("SELECT balance, held FROM wallets WHERE user_id = :u"), {"u": user_id}
            )
        ).one()
        rows = (
            await conn.execute(
                text(
                    "SELECT t.type, t.amount, t.counter_account FROM wallet_transactions t "
                    "JOIN wallets w ON w.wallet_id = t.wallet_id WHERE w.user_id = :u "
                    "ORDER BY t.tx_id"
                ),
                {"u": user_id},
            )
        ).all()
    return WalletView(int(balance), int(held), [(r[0], int(r[1]), r[2]) for r in rows])


@dataclass(frozen=True)
class ProductCounts:
    inventory_taken: int
    vouchers: int
    purchases: dict[str, int]  # status -> count
    counters: int  # sum of per-customer counters


async def product_counts(engine: AsyncEngine, product_id: str) -> ProductCounts:
    async with engine.connect() as conn:
        taken = (
            await conn.execute(
                text("SELECT inventory_taken FROM voucher_products WHERE product_id = :p"),
                {"p": product_id},
            )
        ).scalar_one()
        vouchers = (
            await conn.execute(
                text("SELECT count(*) FROM vouchers WHERE product_id = :p"), {"p": product_id}
            )
        ).scalar_one()
        purchases = dict(
            (
                await conn.execute(
                    text(
                        "SELECT status, count(*) FROM voucher_purchases WHERE product_id = :p "
                        "GROUP BY status"
                    ),
                    {"p": product_id},
                )
            ).all()
        )
        counters = (
            await conn.execute(
                text(
                    "SELECT COALESCE(SUM(taken), 0) FROM voucher_customer_counts "
                    "WHERE product_id = :p"
                ),
                {"p": product_id},
            )
        ).scalar_one()
    return ProductCounts(int(taken), int(vouchers), purchases, int(counters))
