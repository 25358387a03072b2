"""Expiry fixtures on top of the shared harness: the time-skipping test server's client and a
worker on it, `expire` (one PointsExpiryWorkflow run to its end), and `clock`, which moves the
test server's time (the workflow's `as_of`) to where the database's lots fall due.

The database's clock stays where it is: lots a test makes expire some months after the
database's now, and the test skips the workflow's clock past them. The time-skipping server is
shared by the session and only moves forward, so a test asks `clock.months_ahead()` for a
validity that is still in the workflow's future."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

import devstack
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from loyalty.expiry.contracts import ExpiryInput, ExpiryResult
from tests.expiry.helpers import Expire
from tests.harness import workers
from tests.harness.histories import SaveHistory, history_saver
from workflows.expiry import PointsExpiryWorkflow


# An expiry run walks every due lot of its database, so these tests get a database of their own
# per module: the lots of other tests (and what their workflows still post) stay out of their
# counts. The fixtures of that name in tests/conftest.py are overridden here.
@pytest.fixture(scope="module")
async def service_database(
    embedded_postgres: devstack.EmbeddedPostgres,
) -> devstack.ServiceDatabase:
    # Migrating runs its own event loop: off the tests' loop, in a thread.
    name = f"loyalty_expiry_{uuid.uuid4().hex[:12]}"
    return await asyncio.to_thread(embedded_postgres.service_database, name)


@pytest.fixture(scope="module")
def database_url(service_database: devstack.ServiceDatabase) -> str:
    return service_database.app_url


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url, pool_size=10)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="module")
def owner_database_url(service_database: devstack.ServiceDatabase) -> str:
    return service_database.owner_url


@pytest.fixture(scope="module")
async def owner_engine(owner_database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(owner_database_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
def client(time_skipping: WorkflowEnvironment) -> Client:
    """Waiting on a result through this client lets the server skip time."""
    return time_skipping.client


@pytest.fixture
async def skipping_worker(
    client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    async with workers.in_process(client, engine, settings):
        yield


@pytest.fixture
def save_history(client: Client) -> SaveHistory:
    return history_saver(client, Path(__file__).parent / "histories")


@pytest.fixture
def expire(client: Client, settings: Settings, skipping_worker: None) -> Expire:
    """`await expire(batch_size=..., ...)` runs one PointsExpiryWorkflow to its end on the
    time-skipping server; returns its result and handle."""

    async def run(**fields: Any) -> tuple[ExpiryResult, WorkflowHandle[Any, Any]]:
        handle = await client.start_workflow(
            PointsExpiryWorkflow.run,
            ExpiryInput(**fields),
            id=f"points-expiry-test-{uuid.uuid4()}",
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(days=3),
        )
        return await handle.result(), handle

    return run


class Clock:
    def __init__(self, env: WorkflowEnvironment, engine: AsyncEngine) -> None:
        self.env, self.engine = env, engine

    async def database_now(self) -> datetime:
        async with self.engine.connect() as conn:
            now: datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
        return now

    async def months_ahead(self) -> int:
        """A validity in months whose lots, opened now, expire after the workflow's clock plus
        two months (31-day months: the skew covered whatever the calendar)."""
        skew = await self.env.get_current_time() - await self.database_now()
        return max(0, math.ceil(skew / timedelta(days=28))) + 2

    async def months_from_now(self, months: int, *, days: int = 0) -> datetime:
        """The database's now plus `months` calendar months (as a lot's validity counts them)
        and `days`: a fixed number of days per month drifts by weeks when the shared
        time-skipping server is years ahead and `months` runs into the hundreds."""
        async with self.engine.connect() as conn:
            moment: datetime = (
                await conn.execute(
                    text("SELECT now() + make_interval(months => :m, days => :d)"),
                    {"m": months, "d": days},
                )
            ).scalar_one()
        return moment

    async def skip_to(self, moment: datetime) -> None:
        """Move the workflow's clock to `moment` (it must lie ahead)."""
        ahead = moment - await self.env.get_current_time()
        assert ahead > timedelta(0), f"the test server's clock is already past {moment}"
        await self.env.sleep(ahead)


@pytest.fixture
def clock(time_skipping: WorkflowEnvironment, engine: AsyncEngine) -> Clock:
    return Clock(time_skipping, engine)
