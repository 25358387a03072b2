"""Reconciliation findings (migration 0014): one row per (reconciliation, kind, subject)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from loyalty.core.tables.base import metadata, now_column

reconciliation_findings = Table(
    "reconciliation_findings",
    metadata,
    Column("finding_id", BigInteger, Identity(always=True)),
    Column("reconciliation_id", Text, nullable=False),
    Column("workflow_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("booking_id", Text),
    Column("hold_id", UUID(as_uuid=True)),
    Column("payment_intent_id", Text),
    Column("purchase_id", UUID(as_uuid=True)),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    now_column("found_at"),
    PrimaryKeyConstraint("finding_id", name="pk_reconciliation_findings"),
    UniqueConstraint(
        "reconciliation_id", "kind", "subject", name="uq_reconciliation_findings_run_kind_subject"
    ),
    # The kinds of loyalty.reconciliation.contracts.FINDING_KINDS (tests/reconciliation checks
    # the database's constraint against that list).
    CheckConstraint(
        "kind IN ('payment_amount_mismatch', 'payment_not_succeeded', "
        "'payment_succeeded_not_captured', 'payment_intent_missing', 'hold_without_saga', "
        "'voucher_without_code', 'voucher_code_without_burn')",
        name="kind_known",
    ),
    Index("ix_reconciliation_findings_kind", "kind", "finding_id"),
)
