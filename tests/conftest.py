"""Real parts for the tests: embedded PostgreSQL, the Temporal dev server and localstripe are
started once per test session (only when a test asks for them) and stopped afterwards.

Isolation: every test works on its own users (uuid ids) and its own task queue, so tests never
share a wallet; the append-only ledger is never truncated. After every test that touched the
database, the ledger invariants are checked over the whole database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

import devstack
from loyalty import ledger
from loyalty.core.db import make_engine
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.core.temporal import connect
from loyalty.ledger.invariants import find_violations

# The in-process workers of the tests (built by worker.build_worker from the tests' settings) run
# workflows in temporalio's sandbox, so every workflow path a test takes is checked for
# non-deterministic calls at run time. `python worker.py` processes (WorkerProcess) run as
# shipped, without it.
os.environ.setdefault("WORKFLOW_SANDBOX", "true")


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def embedded_postgres(stack_dir: Path) -> Iterator[devstack.EmbeddedPostgres]:
    pg = devstack.EmbeddedPostgres(stack_dir / "pg", delete_on_stop=True)
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def database_url(embedded_postgres: devstack.EmbeddedPostgres) -> str:
    url = embedded_postgres.ensure_database("loyalty_test")
    devstack.run_migrations(url)
    return url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url, pool_size=20)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def temporal_address(stack_dir: Path) -> Iterator[str]:
    port = devstack.free_port()
    proc = devstack.start_temporal(
        port=port, ui_port=None, db_file=None, log_file=stack_dir / "temporal.log"
    )
    yield f"127.0.0.1:{port}"
    devstack.stop_process(proc)


@pytest.fixture(scope="session")
async def temporal_client(temporal_address: str) -> Client:
    return await connect(Settings(environment="test"), address=temporal_address)


@pytest.fixture(scope="session")
def localstripe_url(stack_dir: Path) -> Iterator[str]:
    port = devstack.free_port()
    proc = devstack.start_localstripe(port=port, log_file=stack_dir / "localstripe.log")
    yield f"http://127.0.0.1:{port}"
    devstack.stop_process(proc)


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def user_id() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def new_user_id() -> Callable[[], str]:
    return lambda: f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_wallet(engine: AsyncEngine) -> Callable[..., Awaitable[str]]:
    """`await make_wallet(1000)` gives a fresh user whose wallet holds 1,000 earned points."""

    async def make(points: int = 1000, user_id: str | None = None) -> str:
        user = user_id or f"user-{uuid.uuid4().hex[:12]}"
        async with engine.begin() as conn:
            if points:
                await ledger.earn(
                    conn,
                    user_id=user,
                    points=points,
                    idempotency_key=f"test-seed:{user}:{uuid.uuid4()}",
                    description="test seed",
                )
            else:
                await ledger.open_wallet(conn, user)
        return user

    return make


class WorkerProcess:
    """`python worker.py` processes in their own process groups, configured from the test's
    settings (every field that is set becomes its environment variable), killable at will."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = {
            name.upper(): str(value)
            for name, value in settings.model_dump().items()
            if value is not None
        }
        self.env["WORKFLOW_SANDBOX"] = "false"  # as shipped (see the top of this module)
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
    """Worker processes for the test's `settings` (a fixture of the test's package)."""
    workers = WorkerProcess(settings, tmp_path)
    yield workers
    workers.stop_all()


_invariant_engines: dict[str, AsyncEngine] = {}


@pytest.fixture(autouse=True)
async def _ledger_invariants_hold(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "database_url" not in request.fixturenames:
        return
    # The URL fixture is synchronous and already set up; an async fixture fetched here would
    # need the running event loop, so the check keeps its own small engine per database.
    url: str = request.getfixturevalue("database_url")
    if url not in _invariant_engines:
        _invariant_engines[url] = make_engine(url, pool_size=1)
    async with _invariant_engines[url].connect() as conn:
        violations = await find_violations(conn)
    assert not violations, "ledger invariants broken:\n" + "\n".join(map(str, violations))
