"""The service the schemathesis tests fuzz: its own database, the API under uvicorn and a worker
on a task queue of its own, each in a thread of this process with its own event loop (the fuzz
tests are synchronous: schemathesis sends its requests with `requests`).

Everything a generated request starts must also end: checkouts hold points for
`HOLD_TTL_SECONDS` and then release them, an accrual waits `ACCRUAL_WAIT_SECONDS` for a payment.
`settle` waits for that before the worker stops, so the fuzz leaves no hold open, no saga
running and the ledger's invariants intact, and says so if it cannot."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from api.app import create_app
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect
from loyalty.ledger import stuck_checkouts
from loyalty.ledger.invariants import Violation, find_violations
from tests.harness import workers

T = TypeVar("T")

# A checkout the fuzz starts holds its points this long, then its saga releases them.
HOLD_TTL_SECONDS = 4
# An accrual started by a generated booking event waits this long for the booking's payment.
ACCRUAL_WAIT_SECONDS = 5


def fuzz_settings(
    *, database_url: str, temporal_address: str, localstripe_url: str, task_queue: str
) -> Settings:
    """The fuzzed service's settings: the session's Temporal and localstripe, its own database
    and task queue, and short waits so that every saga a generated request starts ends soon."""
    return Settings(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        stripe_api_key="sk_test_tests",
        stripe_api_base=localstripe_url,
        temporal_task_queue=task_queue,
        hold_ttl_seconds=HOLD_TTL_SECONDS,
        redemption_payment_grace_seconds=10,
        hold_expiry_grace_seconds=5,
        accrual_wait_for_payment_seconds=ACCRUAL_WAIT_SECONDS,
        earn_pending_seconds=0,
    )


class ThreadedServer(uvicorn.Server):
    """uvicorn in a thread of this process, on a free loopback port, with its own loop."""

    def install_signal_handlers(self) -> None:  # the test runner keeps its own
        pass

    def __enter__(self) -> ThreadedServer:
        self._thread = threading.Thread(target=self.run, daemon=True, name="fuzz-api")
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


def serve_api(settings: Settings, port: int) -> ThreadedServer:
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    return ThreadedServer(config)


class WorkerThread:
    """A worker for `settings.temporal_task_queue` (built as worker.py builds it) on an event
    loop of its own thread, with a Temporal client and an engine that `run` lends to
    coroutines (to look at the sagas and the ledger from the synchronous tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.client: Client | None = None
        self.engine: AsyncEngine | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="fuzz-worker")

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        if not self._ready.wait(timeout=60) or self._failure is not None:
            raise RuntimeError("the fuzz worker did not start") from self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the fuzz worker did not stop"
        if self._failure is not None:
            raise RuntimeError("the fuzz worker failed") from self._failure

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by __enter__ / __exit__
            self._failure = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.client = await connect(self.settings)
        assert self.settings.database_url is not None
        self.engine = make_engine(self.settings.database_url, pool_size=5)
        try:
            async with workers.in_process(self.client, self.engine, self.settings):
                self._ready.set()
                await self._stop.wait()
        finally:
            await self.engine.dispose()

    def run(self, make: Callable[[Client, AsyncEngine], Awaitable[T]], timeout: float = 60) -> T:
        """Run `make(client, engine)` on the worker's loop and return its result."""
        assert self.client is not None and self.engine is not None
        future = asyncio.run_coroutine_threadsafe(
            _awaited(make(self.client, self.engine)), self._loop
        )
        return future.result(timeout=timeout)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


@dataclass(frozen=True)
class Leftovers:
    """What the fuzz left behind: sagas still running on its task queue, open holds, and
    broken invariants of its ledger."""

    running: list[str]
    open_holds: int
    violations: list[Violation]

    def __bool__(self) -> bool:
        return bool(self.running or self.open_holds or self.violations)

    def __str__(self) -> str:
        return "\n".join(
            [
                f"running workflows: {self.running}",
                f"open holds: {self.open_holds}",
                *map(str, self.violations),
            ]
        )


# Workflows that end by themselves within the fuzz's short waits. Any other kind still running
# at the end waits on a date a generated request chose (the end of a stay in 9999, say), which
# is its job: those are terminated when the fuzz is over.
ENDS_BY_ITSELF = ("RedemptionWorkflow", "VoucherPurchaseWorkflow")


async def leftovers(client: Client, engine: AsyncEngine, task_queue: str) -> Leftovers:
    running = [
        f"{execution.workflow_type} {execution.id}"
        async for execution in client.list_workflows(
            f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"'
        )
        if execution.workflow_type in ENDS_BY_ITSELF
    ]
    async with engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        open_holds = (
            await conn.execute(text("SELECT count(*) FROM holds WHERE status = 'open'"))
        ).scalar_one()
        # Every hold of the fuzz is past its expiry by now: none may be open, not even in grace.
        violations = await find_violations(conn, hold_grace=timedelta(0))
        _, on_resolved_holds = await stuck_checkouts.find_checkouts_on_resolved_holds(
            client, conn, grace=timedelta(0), now=datetime.now(UTC)
        )
    violations += on_resolved_holds
    return Leftovers(running, int(open_holds), violations)


async def figures(client: Client, engine: AsyncEngine, task_queue: str) -> dict[str, int]:
    """What the fuzz did to the service: holds by status, workflows by type."""
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for status, count in await conn.execute(
            text("SELECT status, count(*) FROM holds GROUP BY status")
        ):
            counts[f"holds {status}"] = int(count)
    async for execution in client.list_workflows(f'TaskQueue = "{task_queue}"'):
        key = f"workflows {execution.workflow_type}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def settle(worker: WorkerThread, within: float) -> Leftovers:
    """Wait (at most `within` seconds) until the fuzz's sagas have ended and its holds are
    released; what is left then (nothing, if all went well)."""
    queue = worker.settings.temporal_task_queue
    deadline = time.monotonic() + within
    while True:
        left = worker.run(lambda client, engine: leftovers(client, engine, queue))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


async def terminate_waiting(client: Client, task_queue: str) -> list[str]:
    """Terminate the workflows of the fuzz still waiting on a far date (see ENDS_BY_ITSELF)."""
    terminated = []
    async for execution in client.list_workflows(
        f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"'
    ):
        if execution.status == WorkflowExecutionStatus.RUNNING:
            handle: Any = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            await handle.terminate(reason="the fuzz run is over")
            terminated.append(f"{execution.workflow_type} {execution.id}")
    return terminated
