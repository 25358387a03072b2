"""The reconciliation's findings, for operators (admin): what the scheduled runs found when
they compared the ledger with Stripe, the running checkout sagas and the issued vouchers; and
a run started now (beside the `ledger-reconciliation` Schedule's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from api.deps import Admin, AppSettings, Connection, TemporalClient
from api.errors import ServiceUnavailable, error_responses
from loyalty.reconciliation import store
from loyalty.reconciliation.contracts import WORKFLOW_NAME, FindingKind, ReconciliationInput
from loyalty.reconciliation.schedule import SCHEDULE_ID, WORKFLOW_TIMEOUT

router = APIRouter(prefix="/reconciliation", tags=["operations"])

# One run started by hand at a time: a second request while it runs attaches to it.
MANUAL_WORKFLOW_ID = f"{SCHEDULE_ID}-manual"


class RunStarted(BaseModel):
    workflow_id: str
    run_id: str | None


@router.get("/findings", response_model=store.FindingsPage, responses=error_responses(400))
async def list_findings(
    conn: Connection,
    principal: Admin,
    kind: FindingKind | None = None,
    run: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[!-~]+$",
            description="a reconciliation id (the result's) or a run's workflow id",
        ),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64, description="from `next_cursor`")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> store.FindingsPage:
    """The findings, newest first, of one kind or one run if asked."""
    return await store.list_findings(conn, kind=kind, run=run, cursor=cursor, limit=limit)


@router.post("/runs", response_model=RunStarted, status_code=202, responses=error_responses(503))
async def start_run(principal: Admin, settings: AppSettings, client: TemporalClient) -> RunStarted:
    """Start a reconciliation now (or attach to the one started by hand that still runs); its
    findings are listed under its workflow id once it has walked past them."""
    try:
        handle = await client.start_workflow(
            WORKFLOW_NAME,
            ReconciliationInput(batch_size=settings.reconciliation_batch_size),
            id=MANUAL_WORKFLOW_ID,
            task_queue=settings.temporal_task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary="Reconciliation started from the API",
        )
    except RPCError as exc:
        raise ServiceUnavailable(f"Temporal refused the start: {exc.message}") from exc
    return RunStarted(workflow_id=handle.id, run_id=handle.first_execution_run_id)
