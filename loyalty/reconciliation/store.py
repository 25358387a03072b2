"""The reconciliation's findings: recorded once per (run, kind, subject), so a retried batch or
a rerun of the same walk adds nothing twice; listed newest first for operators."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.observability import metrics
from loyalty.reconciliation.rules import Finding
from loyalty.wallets.cursors import KeysetCursor

FINDINGS_CURSOR = KeysetCursor("finding:")  # key: the finding_id of the last row shown

_RECORD = text("""
    INSERT INTO reconciliation_findings
        (reconciliation_id, workflow_id, kind, subject, booking_id, hold_id, payment_intent_id,
         purchase_id, details)
    SELECT :reconciliation_id, :workflow_id, f.kind, f.subject, f.booking_id,
           CAST(f.hold_id AS uuid), f.payment_intent_id, CAST(f.purchase_id AS uuid), f.details
    FROM jsonb_to_recordset(CAST(:findings AS jsonb)) AS f(
        kind text, subject text, booking_id text, hold_id text, payment_intent_id text,
        purchase_id text, details jsonb)
    ON CONFLICT (reconciliation_id, kind, subject) DO NOTHING
    RETURNING kind""")


async def record(
    conn: AsyncConnection, reconciliation_id: str, workflow_id: str, findings: Sequence[Finding]
) -> int:
    """Record the findings (each once per run); how many rows were new (those are counted in
    loyalty_reconciliation_findings_total once the transaction commits)."""
    if not findings:
        return 0
    rows = [
        {
            "kind": f.kind,
            "subject": f.subject,
            "booking_id": f.booking_id,
            "hold_id": f.hold_id,
            "payment_intent_id": f.payment_intent_id,
            "purchase_id": f.purchase_id,
            "details": f.details,
        }
        for f in findings
    ]
    params = {
        "reconciliation_id": reconciliation_id,
        "workflow_id": workflow_id,
        "findings": json.dumps(rows, default=str),
    }
    new = list((await conn.execute(_RECORD, params)).scalars())
    metrics.count_findings(conn, new)
    return len(new)


class FindingOut(BaseModel):
    finding_id: int
    reconciliation_id: str = Field(description="the reconciliation (first run id of its chain)")
    workflow_id: str
    kind: str
    subject: str = Field(description="what the finding is about: hold id or purchase id")
    booking_id: str | None
    hold_id: str | None
    payment_intent_id: str | None
    purchase_id: str | None
    details: dict[str, Any] = Field(description="expected and actual, as the run saw them")
    found_at: datetime


class FindingsPage(BaseModel):
    findings: list[FindingOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


_LIST = """
    SELECT finding_id, reconciliation_id, workflow_id, kind, subject, booking_id,
           hold_id::text AS hold_id, payment_intent_id, purchase_id::text AS purchase_id,
           details, found_at
    FROM reconciliation_findings
    WHERE finding_id < :before {filters}
    ORDER BY finding_id DESC
    LIMIT :limit"""


async def list_findings(
    conn: AsyncConnection,
    *,
    kind: str | None = None,
    run: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> FindingsPage:
    """Findings newest first; `run` matches the reconciliation id or a run's workflow id."""
    filters = []
    params: dict[str, Any] = {"limit": limit + 1, "before": 2**63 - 1}
    if cursor is not None:
        params["before"] = FINDINGS_CURSOR.decode_id(cursor)
    if kind is not None:
        filters.append("AND kind = :kind")
        params["kind"] = kind
    if run is not None:
        filters.append("AND (reconciliation_id = :run OR workflow_id = :run)")
        params["run"] = run
    query = text(_LIST.format(filters=" ".join(filters)))
    rows = (await conn.execute(query, params)).mappings().all()
    page = [FindingOut(**row) for row in rows[:limit]]
    more = len(rows) > limit
    return FindingsPage(
        findings=page,
        next_cursor=FINDINGS_CURSOR.encode(page[-1].finding_id) if more and page else None,
    )
