"""Temporal's side of the reconciliation: which checkout sagas are running.

Visibility (the list API) answers a whole batch in one call but is eventually consistent: a
saga started a moment ago may not be listed yet. So a saga visibility does not list as running
is asked once more directly (describe: the workflow's own, current state) before its hold counts
as a hold without a saga."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

REDEMPTION_WORKFLOW = "RedemptionWorkflow"
CONCURRENCY = 8


# Ids safe to quote in a visibility query; any other is only described (booking ids are the
# booking service's, and a quote in one must not change the query).
_PLAIN = re.compile(r"[A-Za-z0-9._:@/+-]{1,200}")


async def running(client: Client, workflow_ids: Iterable[str]) -> set[str]:
    """The ids among `workflow_ids` whose latest run is running."""
    wanted = sorted(set(workflow_ids))
    if not wanted:
        return set()
    plain = [w for w in wanted if _PLAIN.fullmatch(w)]
    listed: set[str] = set()
    if plain:
        ids = ", ".join(f"'{w}'" for w in plain)
        query = (
            f"WorkflowType = '{REDEMPTION_WORKFLOW}' AND ExecutionStatus = 'Running' AND "
            f"WorkflowId IN ({ids})"
        )
        listed = {execution.id async for execution in client.list_workflows(query)}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def confirmed(workflow_id: str) -> bool:
        async with gate:
            try:
                desc = await client.get_workflow_handle(workflow_id).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    unlisted = [w for w in wanted if w not in listed]
    answers = await asyncio.gather(*(confirmed(w) for w in unlisted))
    return listed | {w for w, up in zip(unlisted, answers, strict=True) if up}
