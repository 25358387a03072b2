"""`python worker.py` killed with SIGKILL in the middle of an accrual, then restarted: the
points are posted exactly once and the customer is notified exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import devstack
from loyalty.settings import PROJECT_ROOT, Settings
from tests.earning.conftest import accrual_result, postings


class WorkerProcess:
    """`python worker.py` in its own process group, on the test's task queue and stack."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": settings.database_url or "",
            "TEMPORAL_ADDRESS": settings.temporal_address or "",
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "NOTIFY_URL": settings.notify_url or "",
        }
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        proc = devstack.start_process(
            [sys.executable, str(PROJECT_ROOT / "worker.py")], log_file=log, env=self.env
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
        assert proc.returncode == -signal.SIGKILL

    def stop_all(self) -> None:
        for proc in self.procs:
            devstack.stop_process(proc)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    workers = WorkerProcess(settings, tmp_path)
    yield workers
    workers.stop_all()


async def _accrual_status(engine: AsyncEngine, booking_id: str) -> str | None:
    async with engine.connect() as conn:
        status: str | None = (
            await conn.execute(
                text("SELECT status FROM booking_accruals WHERE booking_id = :b"),
                {"b": booking_id},
            )
        ).scalar_one_or_none()
    return status


async def _until(engine: AsyncEngine, booking_id: str, status: str) -> None:
    async with asyncio.timeout(30):
        while True:
            if await _accrual_status(engine, booking_id) == status:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
def pending_seconds() -> int:
    return 3


async def test_worker_killed_while_points_are_pending(
    api, worker_process, temporal_client, engine, receiver, new_user_id, booking_id
):
    user = new_user_id()
    first = await worker_process.start()
    assert (await api.paid(user, booking_id, 640_000)).status_code == 202
    await _until(engine, booking_id, "pending")
    worker_process.kill(first)

    await asyncio.sleep(3.5)  # the timer fires while no worker runs
    assert await postings(engine, user) == []
    await worker_process.start()
    state = await accrual_result(temporal_client, booking_id, within=60)

    assert (state.status, state.outcome.points) == ("posted", 640)
    assert await postings(engine, user) == [("earn", 640, booking_id)]
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]


@pytest.mark.parametrize("pending_seconds", [0])
async def test_worker_killed_right_after_the_earn_was_posted(
    api, worker_process, temporal_client, engine, receiver, new_user_id, booking_id
):
    user = new_user_id()
    receiver.fail_first = 1_000  # keep the workflow busy notifying when the worker dies
    first = await worker_process.start()
    assert (await api.paid(user, booking_id, 90_000)).status_code == 202
    await _until(engine, booking_id, "posted")
    worker_process.kill(first)

    receiver.fail_first = 0
    await worker_process.start()
    state = await accrual_result(temporal_client, booking_id, within=90)

    assert (state.status, state.outcome.points) == ("posted", 90)
    assert await postings(engine, user) == [("earn", 90, booking_id)]
    assert receiver.keys(user) == [f"points_earned:earn:pi-{booking_id}"]
