"""Reconciliation findings: one row per (reconciliation, kind, subject), written by the
reconciliation's batches (a retried batch adds nothing: ON CONFLICT DO NOTHING) and listed by
operators (GET /reconciliation/findings). Append-only for the application role.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from alembic import op

from migrations import roles

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KINDS = (
    "payment_amount_mismatch",
    "payment_not_succeeded",
    "payment_succeeded_not_captured",
    "payment_intent_missing",
    "hold_without_saga",
    "voucher_without_code",
    "voucher_code_without_burn",
)


def upgrade() -> None:
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    op.execute(f"""
CREATE TABLE reconciliation_findings (
    finding_id bigint GENERATED ALWAYS AS IDENTITY,
    reconciliation_id text NOT NULL,
    workflow_id text NOT NULL,
    kind text NOT NULL,
    subject text NOT NULL,
    booking_id text,
    hold_id uuid,
    payment_intent_id text,
    purchase_id uuid,
    details jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    found_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_reconciliation_findings PRIMARY KEY (finding_id),
    CONSTRAINT uq_reconciliation_findings_run_kind_subject
        UNIQUE (reconciliation_id, kind, subject),
    CONSTRAINT ck_reconciliation_findings_kind_known CHECK (kind IN ({kinds}))
)""")
    # Operators list one kind, newest first.
    op.execute(
        "CREATE INDEX ix_reconciliation_findings_kind ON reconciliation_findings (kind, finding_id)"
    )
    roles.grant("SELECT, INSERT", "reconciliation_findings")


def downgrade() -> None:
    op.execute("DROP TABLE reconciliation_findings")
