"""A worker built exactly as worker.py builds it runs a real workflow against the dev server;
`python worker.py` itself starts, serves, stops on SIGTERM and fails clearly without Temporal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

import devstack
from activities import Dependencies
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.ledger.contracts import InvariantCheckInput, InvariantReport
from tests.harness import payload_keys
from worker import build_worker
from workflows.ledger import InvariantCheckWorkflow


async def _wallet_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM wallets"))).scalar_one())


async def _check(client: Client, task_queue: str) -> InvariantReport:
    return await client.execute_workflow(
        InvariantCheckWorkflow.run,
        # The ledger's own consistency: the session's database keeps holds that tests place
        # without a saga to resolve them, which the stuck-money checks would (rightly) report.
        InvariantCheckInput(stuck_money=False),
        id=f"invariant-check-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def test_worker_runs_invariant_check(
    temporal_client: Client,
    engine: AsyncEngine,
    task_queue: str,
    make_wallet: Callable[..., Awaitable[str]],
) -> None:
    before = await _wallet_count(engine)
    await make_wallet(500)
    await make_wallet(0)
    deps = Dependencies(settings=Settings(environment="test"), engine=engine)

    async with build_worker(temporal_client, deps, task_queue):
        report = await _check(temporal_client, task_queue)

    assert report.ok, report.violations
    assert report.wallets == before + 2
    assert report.transactions >= 1
    assert len(report.checks) >= 4


async def test_invariant_check_reports_a_corrupted_wallet(
    temporal_client: Client,
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    task_queue: str,
    make_wallet: Callable[..., Awaitable[str]],
) -> None:
    user = await make_wallet(300)
    deps = Dependencies(settings=Settings(environment="test"), engine=engine)
    # Only the owner may write a wallet directly; the service's role cannot corrupt one.
    corrupt = "UPDATE wallets SET balance = balance + :d WHERE user_id = :u"
    async with owner_engine.begin() as conn:
        await conn.execute(text(corrupt), {"d": 7, "u": user})
    try:
        async with build_worker(temporal_client, deps, task_queue):
            report = await _check(temporal_client, task_queue)
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text(corrupt), {"d": -7, "u": user})

    assert not report.ok
    mine = [v for v in report.violations if v.subject == user]
    # The wallet's lots hold 300 available points, its balance now says 307.
    assert [(v.check, v.actual, v.expected) for v in mine] == [
        ("balance equals the sum of posted amounts", "307", "300"),
        ("available equals the points left in lots", "300", "307"),
    ]


def _worker_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEMPORAL_", "DATABASE_", "WORKFLOW_"))  # the rest as shipped
    }
    # The suite's payload key, as the test's client has it (the key is not a shipped default).
    keys = {"TEMPORAL_PAYLOAD_KEYS": payload_keys.TEST_KEYS}
    return {**env, "PYTHONUNBUFFERED": "1", **keys, **overrides}


async def _read_until(stream: asyncio.StreamReader, needle: str) -> str:
    seen = ""
    while needle not in seen:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"worker output ended before {needle!r}:\n{seen}")
        seen += line.decode()
    return seen


async def test_worker_process_serves_and_stops_on_sigterm(
    temporal_client: Client, temporal_address: str, database_url: str, task_queue: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        cwd=PROJECT_ROOT,
        env=_worker_env(
            TEMPORAL_ADDRESS=temporal_address,
            DATABASE_URL=database_url,
            TEMPORAL_TASK_QUEUE=task_queue,
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            started = await _read_until(proc.stdout, "started on task queue")
        # uvloop is a project dependency (the API's uvicorn picks it too); no sandbox as shipped
        assert "(event loop uvloop, workflow sandbox off)" in started
        report = await asyncio.wait_for(_check(temporal_client, task_queue), timeout=30)
        assert report.ok
        proc.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(proc.stdout.read(), timeout=30)).decode()
        assert await proc.wait() == 0, rest
        assert "worker: stopped" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_worker_exits_clearly_when_temporal_is_unreachable(database_url: str) -> None:
    closed = devstack.free_port()
    result = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=PROJECT_ROOT,
        env=_worker_env(TEMPORAL_ADDRESS=f"127.0.0.1:{closed}", DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"worker: cannot reach Temporal at 127.0.0.1:{closed}")
    assert "Traceback" not in result.stderr + result.stdout


def test_worker_module_import_has_no_side_effects() -> None:
    # The sandbox re-imports workflow modules; worker.py must only run under __main__.
    source = Path(PROJECT_ROOT / "worker.py").read_text()
    assert 'if __name__ == "__main__":\n    main()' in source
