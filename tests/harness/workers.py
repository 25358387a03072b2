"""Workers for the tests, built exactly as worker.py builds them: in this process (the suite
runs them in temporalio's sandbox, see tests/conftest.py) or as `python worker.py` processes
that a test can kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

import devstack
from activities import Dependencies
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.core.stripe_client import async_stripe_client
from worker import build_worker


@contextlib.asynccontextmanager
async def in_process(
    client: Client, engine: AsyncEngine, settings: Settings, **dependencies: Any
) -> AsyncIterator[None]:
    """A worker in this process on `settings.temporal_task_queue`. `dependencies` replace
    parts of activities.Dependencies (a test's faulty Stripe client, say)."""
    async with async_stripe_client(settings) as stripe_client:
        deps = Dependencies(
            settings=settings, engine=engine, **{"stripe": stripe_client, **dependencies}
        )
        async with build_worker(client, deps, settings.temporal_task_queue):
            yield


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as a child process's environment: every field that is set becomes its
    variable, secrets revealed (model_dump leaves them masked)."""
    return {
        name.upper(): str(value.get_secret_value() if isinstance(value, SecretStr) else value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


class WorkerProcess:
    """`python worker.py` processes in their own process groups, configured from the test's
    settings (every field that is set becomes its environment variable), killable at will."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = settings_env(settings)
        self.env["WORKFLOW_SANDBOX"] = "false"  # as shipped
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self, within: float = 90) -> subprocess.Popen[bytes]:
        """Start one and wait until it says it has started (`within` seconds: its imports alone
        take most of 30 on a 2-core machine that other test runs keep busy)."""
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        proc = devstack.start_process(
            [sys.executable, str(PROJECT_ROOT / "worker.py")], log_file=log, env=self.env
        )
        self.procs.append(proc)
        async with asyncio.timeout(within):
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
