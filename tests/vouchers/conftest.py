"""What only the voucher tests need on top of the shared harness (tests/conftest.py): a product
factory, reads of what a purchase changed, and a worker with faults injected.

Failure injection: `fault_worker(...)` runs a worker on which some voucher activities are
replaced by real activities registered under the same names: `FailingIssue.issue` always fails
(retryably, so the workflow's retry policy runs out exactly as it would on a real fault);
`DrainingBurn.burn` lets another writer spend the wallet just before the real burn runs (a
customer spending elsewhere between reservation and burn). Everything else (the ledger, the
reservation, the compensations) is the production code."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
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
from loyalty import ledger
from loyalty.core import db
from loyalty.core.settings import Settings
from loyalty.vouchers.contracts import BurnPoints, IssueVoucher, PointsBurned, VoucherOut
from tests.harness.api import Api
from worker import workflow_runner
from workflows.registry import WORKFLOWS

MakeProduct = Callable[..., Awaitable[dict[str, Any]]]


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
        async with db.transaction(self._engine) as conn:
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
def fault_worker(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> Callable[..., AbstractAsyncContextManager[Worker]]:
    """`async with fault_worker(issue=FailingIssue().issue):` a worker built as worker.py builds
    it, except that the named VoucherActivities methods are replaced by the given activities
    (same activity names)."""

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
            workflow_runner=workflow_runner(settings.workflow_sandbox),
            graceful_shutdown_timeout=timedelta(seconds=5),
        )

    return make


@pytest.fixture
def make_product(api: Api) -> MakeProduct:
    """`await make_product(price_points=500, inventory=5)` creates a product over the admin API."""

    async def make(**fields: Any) -> dict[str, Any]:
        body = {"name": f"Voucher {uuid.uuid4().hex[:6]}", "price_points": 500, **fields}
        response = await api.http.post("/vouchers/products", json=body, headers=api.admin)
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    return make


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


async def buy(
    api: Api, user: str, product_id: str, key: str | None = None, *, as_service: bool = False
) -> httpx.Response:
    """POST /wallets/{user}/vouchers as the customer (or the booking service), with a new
    Idempotency-Key unless one is given."""
    key = key or new_key()
    headers = api.auth.service(key) if as_service else api.auth.customer(user, key)
    return await api.http.post(
        f"/wallets/{user}/vouchers", json={"product_id": product_id}, headers=headers
    )


@dataclass(frozen=True)
class WalletView:
    balance: int
    held: int
    postings: list[tuple[str, int, str]]  # (type, amount, counter_account) in order


_WALLET = text("SELECT balance, held FROM wallets WHERE user_id = :u")
_POSTINGS = text(
    "SELECT t.type, t.amount, t.counter_account FROM wallet_transactions t "
    "JOIN wallets w ON w.wallet_id = t.wallet_id WHERE w.user_id = :u ORDER BY t.tx_id"
)


async def wallet_of(engine: AsyncEngine, user_id: str) -> WalletView:
    async with engine.connect() as conn:
        balance, held = (await conn.execute(_WALLET, {"u": user_id})).one()
        rows = (await conn.execute(_POSTINGS, {"u": user_id})).all()
    return WalletView(int(balance), int(held), [(r[0], int(r[1]), r[2]) for r in rows])


@dataclass(frozen=True)
class ProductCounts:
    inventory_taken: int
    vouchers: int
    purchases: dict[str, int]  # status -> count
    counters: int  # sum of per-customer counters


_TAKEN = text("SELECT inventory_taken FROM voucher_products WHERE product_id = :p")
_VOUCHERS = text("SELECT count(*) FROM vouchers WHERE product_id = :p")
_PURCHASES = text(
    "SELECT status, count(*) FROM voucher_purchases WHERE product_id = :p GROUP BY status"
)
_COUNTERS = text(
    "SELECT COALESCE(SUM(taken), 0) FROM voucher_customer_counts WHERE product_id = :p"
)


async def product_counts(engine: AsyncEngine, product_id: str) -> ProductCounts:
    async with engine.connect() as conn:
        taken = (await conn.execute(_TAKEN, {"p": product_id})).scalar_one()
        vouchers = (await conn.execute(_VOUCHERS, {"p": product_id})).scalar_one()
        purchases = dict((await conn.execute(_PURCHASES, {"p": product_id})).all())
        counters = (await conn.execute(_COUNTERS, {"p": product_id})).scalar_one()
    return ProductCounts(int(taken), int(vouchers), purchases, int(counters))
