"""The invariant that needs Temporal as well as the ledger: no checkout saga still runs as `held`
(its RedemptionStatus) when the ledger resolved its hold more than the grace ago.

A saga publishes its new status in the workflow task that records its capture or release, so the
two disagree for a moment only. Beyond the grace the saga waits for news about points that are
already spent or back in the wallet: its hold was resolved outside it, or its settlement never
reached Temporal. The invariant check workflow's activity runs this check; the pure-database
CLI (loyalty.ledger.invariants) does not, having no Temporal client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client

from loyalty.core.search_attributes import BOOKING_ID, LOYALTY_USER_ID
from loyalty.ledger.invariants import Violation

CHECK = "no running checkout waits on a resolved hold"

# Only checkout sagas set RedemptionStatus. A saga started after `before` cannot have a hold
# resolved before it, so the list leaves it out.
_HELD_RUNNING = (
    'ExecutionStatus = "Running" AND RedemptionStatus = "held" AND StartTime < "{before}"'
)
_BATCH = 500

# A checkout's hold is the latest hold of its booking in its wallet: one saga per booking runs at
# a time, and a saga shows `held` only once its hold is placed.
_RESOLVED_HOLDS = text("""
    SELECT c.workflow_id, h.hold_id::text, h.status, h.resolved_at
    FROM unnest(CAST(:workflow_ids AS text[]), CAST(:booking_ids AS text[]),
                CAST(:user_ids AS text[])) AS c(workflow_id, booking_id, user_id)
    JOIN wallets w ON w.user_id = c.user_id
    CROSS JOIN LATERAL (
        SELECT t.hold_id FROM wallet_transactions t
        WHERE t.booking_id = c.booking_id AND t.wallet_id = w.wallet_id AND t.type = 'hold'
        ORDER BY t.tx_id DESC LIMIT 1) latest
    JOIN holds h ON h.hold_id = latest.hold_id
    WHERE h.status <> 'open' AND h.resolved_at < :resolved_before
    ORDER BY h.resolved_at""")


@dataclass(frozen=True)
class HeldCheckout:
    workflow_id: str
    booking_id: str
    user_id: str


async def held_checkouts(
    client: Client, *, started_before: datetime
) -> AsyncIterator[HeldCheckout]:
    """Running checkout sagas whose RedemptionStatus is `held`, as Temporal's visibility lists
    them (eventually consistent: a status published a moment ago may not show yet)."""
    before = started_before.astimezone(UTC).isoformat().replace("+00:00", "Z")
    async for execution in client.list_workflows(_HELD_RUNNING.format(before=before)):
        attributes = execution.typed_search_attributes
        booking_id, user_id = attributes.get(BOOKING_ID), attributes.get(LOYALTY_USER_ID)
        if booking_id and user_id:
            yield HeldCheckout(execution.id, booking_id, user_id)


async def find_checkouts_on_resolved_holds(
    client: Client,
    conn: AsyncConnection,
    *,
    grace: timedelta,
    now: datetime | None = None,
    limit: int = 100,
) -> tuple[int, list[Violation]]:
    """(how many running `held` checkouts were examined, those whose hold the ledger resolved
    more than `grace` before `now`), at most `limit` of the latter."""
    resolved_before = (now or datetime.now(UTC)) - grace
    examined = 0
    found: list[Violation] = []
    async for batch in _batched(held_checkouts(client, started_before=resolved_before), _BATCH):
        examined += len(batch)
        found += await _resolved(conn, batch, resolved_before)
        if len(found) >= limit:
            break
    return examined, found[:limit]


async def _batched(
    checkouts: AsyncIterator[HeldCheckout], size: int
) -> AsyncIterator[list[HeldCheckout]]:
    batch: list[HeldCheckout] = []
    async for checkout in checkouts:
        batch.append(checkout)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _resolved(
    conn: AsyncConnection, checkouts: Sequence[HeldCheckout], resolved_before: datetime
) -> list[Violation]:
    params = {
        "workflow_ids": [c.workflow_id for c in checkouts],
        "booking_ids": [c.booking_id for c in checkouts],
        "user_ids": [c.user_id for c in checkouts],
        "resolved_before": resolved_before,
    }
    rows = (await conn.execute(_RESOLVED_HOLDS, params)).all()
    return [
        Violation(
            CHECK,
            workflow_id,
            "running, RedemptionStatus held",
            f"{status}, as its hold {hold_id} since "
            f"{resolved_at.astimezone(UTC).isoformat(timespec='seconds')}",
        )
        for workflow_id, hold_id, status, resolved_at in rows
    ]
