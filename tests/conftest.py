"""The shared harness's fixtures (tests/harness has the parts).

Real parts: embedded PostgreSQL, the Temporal dev server (and its time-skipping test server),
localstripe and the Tansu Kafka broker are started once per test session, only when a test asks
for them, and stopped afterwards. Per test: settings naming them with the test's own task queue
(a package or test adjusts them by overriding `settings_overrides`), the API, a worker, tokens,
wallets.

Isolation: every test works on its own users (uuid ids) and its own task queue, so tests never
share a wallet; the append-only ledger is never truncated. After every test that touched the
database, the ledger invariants are checked over the whole database."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import devstack
from api.app import create_app
from loyalty.core import search_attributes
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from loyalty.core.stripe_client import make_stripe_client
from loyalty.core.temporal import connect, data_converter
from loyalty.ledger.invariants import find_violations
from tests.harness import api as harness_api
from tests.harness import payload_keys, wallets, workers
from tests.harness.histories import SaveHistory, history_saver
from tests.harness.receiver import Receiver, receiving

# The in-process workers of the tests (built by worker.build_worker from the tests' settings) run
# workflows in temporalio's sandbox, so every workflow path a test takes is checked for
# non-deterministic calls at run time. `python worker.py` processes (WorkerProcess) run as
# shipped, without it.
os.environ.setdefault("WORKFLOW_SANDBOX", "true")
# Every client and worker of the suite (and the `python worker.py` processes, which inherit the
# environment) encrypts Temporal payloads with the suite's own key.
os.environ.setdefault("TEMPORAL_PAYLOAD_KEYS", payload_keys.TEST_KEYS)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def embedded_postgres(stack_dir: Path) -> Iterator[devstack.EmbeddedPostgres]:
    pg = devstack.EmbeddedPostgres(stack_dir / "pg", delete_on_stop=True)
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def service_database(embedded_postgres: devstack.EmbeddedPostgres) -> devstack.ServiceDatabase:
    """The tests' database: its roles made by the superuser, migrated as the owner role."""
    return embedded_postgres.service_database("loyalty_test")


@pytest.fixture(scope="session")
def database_url(service_database: devstack.ServiceDatabase) -> str:
    """The application role's URL: the API, the workers and `engine` connect as it."""
    return service_database.app_url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url, pool_size=20)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def owner_database_url(service_database: devstack.ServiceDatabase) -> str:
    """The migration owner's URL (it owns the schema)."""
    return service_database.owner_url


@pytest.fixture(scope="session")
async def owner_engine(owner_database_url: str) -> AsyncIterator[AsyncEngine]:
    """As the owner role, for fixtures that write what the service may not: backdated ledger
    rows, a corrupted balance, a row lock on a hold. The service's own code uses `engine`."""
    eng = make_engine(owner_database_url, pool_size=5)
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


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_dir: Path) -> Iterator[str]:
    """The embedded Tansu broker (in memory), started for the tests that ask for it; with
    KAFKA_BOOTSTRAP_SERVERS set, that cluster instead."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    port = devstack.free_port()
    proc = devstack.start_kafka(port=port, log_file=stack_dir / "kafka.log")
    yield f"127.0.0.1:{port}"
    devstack.stop_process(proc)


@pytest.fixture(scope="session")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: a workflow's timers fire as soon as nothing else is
    running, so tests of long waits take no wall time. It does not run workflow updates (the
    checkout saga), so those tests use the dev server with short durations instead."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=devstack.venv_bin("temporal-test-server"),
        data_converter=data_converter(Settings(environment="test")),
    )
    # Registered as on the dev server: workflows started with them are refused otherwise.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )
    yield env
    await env.shutdown()


# --- per test ------------------------------------------------------------------------------------


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def user_id() -> str:
    return wallets.new_user()


@pytest.fixture
def new_user_id() -> Callable[[], str]:
    return wallets.new_user


@pytest.fixture
def booking_id() -> str:
    return f"bk-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a package or test to adjust `settings` (NOTIFY_URL, durations ...)."""
    return {}


@pytest.fixture
def settings(
    database_url: str,
    temporal_address: str,
    localstripe_url: str,
    task_queue: str,
    settings_overrides: dict[str, Any],
) -> Settings:
    """The service's settings for this test: the session's PostgreSQL, Temporal dev server and
    localstripe, and the test's own task queue."""
    return Settings(
        **{
            "environment": "test",
            "database_url": database_url,
            "temporal_address": temporal_address,
            "stripe_api_key": "sk_test_tests",
            "stripe_api_base": localstripe_url,
            "temporal_task_queue": task_queue,
            # The workflows' own delivery (no relay runs beside most tests); tests/streams
            # turns the relay on.
            "outbox_relay": False,
            **settings_overrides,
        }
    )


@pytest.fixture
def auth(settings: Settings) -> harness_api.Auth:
    return harness_api.Auth(settings)


@pytest.fixture
async def api(settings: Settings, engine: AsyncEngine) -> AsyncIterator[harness_api.Api]:
    """The API in this process (ASGI), with the test's settings."""
    async with harness_api.in_process(create_app(settings)) as http:
        yield harness_api.Api(http, harness_api.Auth(settings))


@pytest.fixture
async def live_api(settings: Settings) -> AsyncIterator[harness_api.Api]:
    """The API on a port of its own, with localstripe's signed webhooks pointed at it."""
    async with harness_api.served(settings) as served:
        assert served.url is not None
        await harness_api.point_webhooks(settings, served.url)
        yield served


@pytest.fixture
def stripe_client(settings: Settings) -> stripe.StripeClient:
    """The official SDK against localstripe, for playing the customer who pays."""
    return make_stripe_client(settings)


@pytest.fixture
async def worker(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[None]:
    """A worker in this process on the test's task queue, built as worker.py builds it."""
    async with workers.in_process(temporal_client, engine, settings):
        yield


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[workers.WorkerProcess]:
    """`python worker.py` processes for the test's settings, killable at will."""
    processes = workers.WorkerProcess(settings, tmp_path)
    yield processes
    processes.stop_all()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A notification service on a local port (point NOTIFY_URL at `receiver.url`)."""
    with receiving() as state:
        yield state


@pytest.fixture
def make_wallet(engine: AsyncEngine) -> Callable[..., Awaitable[str]]:
    """`await make_wallet(1000, spent=200, held=100)`: a fresh user with that history."""

    async def make(points: int = 1000, **history: Any) -> str:
        return await wallets.make_wallet(engine, points, **history)

    return make


@pytest.fixture
def save_history(temporal_client: Client, request: pytest.FixtureRequest) -> SaveHistory:
    """`await save_history("name", workflow_id)` keeps the run's history for the replay tests
    of the test's package (`<package>/histories/`) when SAVE_HISTORIES=1; a no-op otherwise."""
    return history_saver(temporal_client, request.path.parent / "histories")


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
