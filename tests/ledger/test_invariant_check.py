"""The invariant check from Temporal, against the real dev server, PostgreSQL and localstripe:
`python worker.py` creates the `ledger-invariants` Schedule, a triggered run reports a stuck hold
and carries LedgerAlert; a running checkout whose hold the ledger already resolved is reported;
a clean check sets no alert."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError

from loyalty import ledger
from loyalty.core import db
from loyalty.core.search_attributes import LEDGER_ALERT
from loyalty.core.settings import Settings
from loyalty.ledger import stuck_checkouts
from loyalty.ledger.contracts import InvariantCheckInput, InvariantReport
from loyalty.ledger.invariants import CHECKS, LIABILITY, STUCK_HOLDS
from loyalty.ledger.schedule import SCHEDULE_ID
from tests.harness.api import Api
from tests.harness.histories import SaveHistory
from tests.harness.waits import eventually, within
from tests.harness.workers import WorkerProcess
from tests.ledger.stuck import stuck_hold
from workflows.ledger import InvariantCheckWorkflow

MakeWallet = Callable[..., Awaitable[str]]
LONG_AGO = timedelta(days=3650)


@pytest.fixture
async def no_schedule(temporal_client: Client) -> AsyncIterator[None]:
    """No invariant schedule before or after the test. The dev server is shared by the session,
    and any `worker.py` an earlier test started created the schedule at its start-up."""

    async def delete() -> None:
        with contextlib.suppress(RPCError):  # none there
            await temporal_client.get_schedule_handle(SCHEDULE_ID).delete()

    await delete()
    yield
    await delete()


async def _check(
    client: Client, settings: Settings, params: InvariantCheckInput
) -> tuple[str, InvariantReport]:
    workflow_id = f"invariant-check-{uuid.uuid4()}"
    report = await within(
        client.execute_workflow(
            InvariantCheckWorkflow.run,
            params,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
        ),
        60,
    )
    return workflow_id, report


async def _alert(client: Client, workflow_id: str) -> str | None:
    described = await client.get_workflow_handle(workflow_id).describe()
    return described.typed_search_attributes.get(LEDGER_ALERT)


async def _listed_as_alert(client: Client, workflow_id: str) -> bool:
    query = f'LedgerAlert IS NOT NULL AND WorkflowId = "{workflow_id}"'
    return [w.id async for w in client.list_workflows(query)] == [workflow_id]


async def test_the_worker_schedules_the_check_and_a_triggered_run_raises_the_alert(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    worker_process: WorkerProcess,
    no_schedule: None,
) -> None:
    await worker_process.start()
    log = worker_process.log_dir / "worker-0.log"
    assert "schedule ledger-invariants created (every 300s)" in log.read_text()
    handle = temporal_client.get_schedule_handle(SCHEDULE_ID)
    desc = await handle.describe()
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == (
        "InvariantCheckWorkflow",
        settings.temporal_task_queue,
    )
    assert [i.every for i in desc.schedule.spec.intervals] == [timedelta(minutes=5)]
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert not desc.schedule.state.paused

    user = await make_wallet(500)
    async with stuck_hold(engine, user, expired_ago=LONG_AGO, points=70) as held:

        async def started() -> list[str]:
            actions = (await handle.describe()).info.recent_actions
            return [
                a.action.workflow_id
                for a in actions
                if isinstance(a.action, ScheduleActionExecutionStartWorkflow)
            ]

        before = set(await started())  # a run the interval started on its own, if any
        await handle.trigger()  # what `temporal schedule trigger --schedule-id ...` does

        async def started_since() -> list[str]:
            return [w for w in await started() if w not in before]

        workflow_id = (await eventually(started_since, seconds=30))[-1]
        assert workflow_id.startswith(f"{SCHEDULE_ID}-")
        run = temporal_client.get_workflow_handle_for(InvariantCheckWorkflow.run, workflow_id)
        report = await within(run.result(), 60)

    mine = [v for v in report.violations if v.subject == str(held.hold_id)]
    assert [(v.check, v.actual.split(",")[0]) for v in mine] == [
        (STUCK_HOLDS, f"open: 70 points of {user} for booking {held.booking_id}")
    ]
    alert = await _alert(temporal_client, workflow_id)
    assert alert is not None and STUCK_HOLDS in alert.split("; ")
    assert await eventually(lambda: _listed_as_alert(temporal_client, workflow_id), seconds=30)

    async def logged() -> bool:
        return "ERROR temporalio.workflow: ledger invariants violated: " in log.read_text()

    assert await eventually(logged, seconds=10)


@pytest.mark.usefixtures("worker")
async def test_a_running_checkout_whose_hold_was_resolved_is_reported(
    api: Api,
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    # The saga holds the points and waits for the payment of the rest.
    body = {"booking_id": booking_id, "order_amount": 100_000, "currency": "VND", "points": 30_000}
    response = await api.http.post(f"/wallets/{user}/redeem", json=body, headers=api.service)
    assert response.status_code == 200, response.text
    saga, hold_id = response.json()["workflow_id"], response.json()["hold_id"]
    try:

        async def listed_as_held() -> bool:
            query = f'WorkflowId = "{saga}" AND RedemptionStatus = "held"'
            return bool([w async for w in temporal_client.list_workflows(query)])

        assert await eventually(listed_as_held, seconds=30)
        strict = InvariantCheckInput(hold_expiry_grace_seconds=0)

        # Held with its hold open: sound.
        _, report = await _check(temporal_client, settings, strict)
        assert report.held_checkouts >= 1
        assert [v for v in report.violations if v.subject == saga] == []

        # The hold released behind the saga's back: the saga still waits on it.
        async with db.transaction(engine) as conn:
            await ledger.release(
                conn, hold_id=uuid.UUID(hold_id), idempotency_key=f"test-outside:{hold_id}"
            )
        workflow_id, report = await _check(temporal_client, settings, strict)
        mine = [v for v in report.violations if v.subject == saga]
        assert [(v.check, v.actual) for v in mine] == [
            (stuck_checkouts.CHECK, "running, RedemptionStatus held")
        ]
        assert mine[0].expected.startswith(f"released, as its hold {hold_id} since ")
        assert report.checks == [*CHECKS, LIABILITY, STUCK_HOLDS, stuck_checkouts.CHECK]
        alert = await _alert(temporal_client, workflow_id)
        assert alert is not None and stuck_checkouts.CHECK in alert.split("; ")
        await save_history("violations", workflow_id)

        # Within the grace it is not (yet) a violation.
        _, report = await _check(
            temporal_client, settings, InvariantCheckInput(hold_expiry_grace_seconds=3600)
        )
        assert [v for v in report.violations if v.subject == saga] == []
    finally:
        await temporal_client.get_workflow_handle(saga).terminate(reason="test over")


@pytest.mark.usefixtures("worker")
async def test_a_clean_check_sets_no_alert(
    temporal_client: Client,
    settings: Settings,
    make_wallet: MakeWallet,
    save_history: SaveHistory,
) -> None:
    await make_wallet(300)
    # The ledger's own consistency only: the session's database keeps other tests' unresolved
    # holds, which the stuck-money checks would (rightly) report.
    workflow_id, report = await _check(
        temporal_client, settings, InvariantCheckInput(stuck_money=False)
    )
    assert report.ok, report.violations
    assert report.checks == [*CHECKS, LIABILITY]
    assert report.failed_checks == []
    assert await _alert(temporal_client, workflow_id) is None
    await save_history("clean", workflow_id)
