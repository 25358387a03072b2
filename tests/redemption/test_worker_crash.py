"""The worker process is killed (SIGKILL) after the hold; a new one finishes the saga, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty import devstack, stripe_events
from loyalty.settings import PROJECT_ROOT, Settings
from tests.redemption.conftest import Api
from tests.redemption.helpers import pay, postings, wait_for_end, wallet

MakeWallet = Callable[..., Awaitable[str]]
SaveHistory = Callable[[str, str], Awaitable[None]]


class WorkerProcess:
    """`python worker.py` as a separate process group, on the test's task queue."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self._env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": settings.database_url or "",
            "TEMPORAL_ADDRESS": settings.temporal_address or "",
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "STRIPE_API_KEY": settings.stripe_api_key or "",
            "STRIPE_API_BASE": settings.stripe_api_base or "",
        }
        self._log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self) -> subprocess.Popen[bytes]:
        log = self._log_dir / f"worker-{len(self.procs)}.log"
        proc = devstack.start_process(
            [sys.executable, str(PROJECT_ROOT / "worker.py")], log_file=log, env=self._env
        )
        self.procs.append(proc)
        async with asyncio.timeout(30):
            while "started on task queue" not in (log.read_text() if log.exists() else ""):
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.1)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            devstack.stop_process(proc)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    workers = WorkerProcess(settings, tmp_path)
    yield workers
    workers.stop_all()


async def test_worker_killed_after_the_hold_saga_completes_exactly_once(
    api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    first = await worker_process.start()
    answer = await api.http.post(
        f"/wallets/{user}/redeem",
        json={
            "booking_id": booking_id,
            "order_amount": 100_000,
            "currency": "VND",
            "points": 30_000,
        },
        headers=api.service,
    )
    assert answer.status_code == 200, answer.text
    hold = answer.json()

    worker_process.kill(first)
    assert first.returncode == -signal.SIGKILL

    # The customer pays while no worker runs: the webhook's signal waits in Temporal.
    await pay(stripe_client, hold["payment_intent_id"])
    async with asyncio.timeout(15):
        while True:
            async with engine.connect() as conn:
                seen = await stripe_events.outcomes(conn, hold["payment_intent_id"])
            if seen:
                break
            await asyncio.sleep(0.1)
    assert [outcome for _, _, outcome in seen] == ["signalled"]
    assert (await wallet(engine, user)).held == 30_000  # nothing moved without a worker

    await worker_process.start()
    final = await wait_for_end(temporal_client, booking_id, within=60)

    assert final.status == "captured"
    assert await postings(engine, booking_id) == [
        ("hold", 0, 30_000, None),
        ("capture", -30_000, -30_000, 30_000),
    ]
    assert (await wallet(engine, user)).balance == 20_000
    await save_history("worker_killed_captured", hold["workflow_id"])
