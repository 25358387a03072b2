"""The tier evaluation's Temporal contract: workflow input, state carried across
continue-as-new, progress, and the activities' inputs and results. Pydantic only (sandbox-safe).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from loyalty.tiers.rules import TierStep

# The workflow's type name: the schedule (loyalty.tiers.schedule) starts it by this name, and
# running schedules and saved histories name it, so it never changes.
WORKFLOW_NAME = "TierEvaluation"


class TierEvaluationProgress(BaseModel):
    """What an operator sees through the `progress` query and the workflow's details."""

    evaluation_id: str
    status: Literal["running", "done"] = "running"
    as_of: datetime
    started_at: datetime
    wallets_estimate: int = Field(description="wallet count when the evaluation started")
    wallets_evaluated: int = 0
    upgraded: int = 0
    downgraded: int = 0
    downgrades_in_grace: int = Field(
        default=0, description="wallets short of their tier but still inside the grace period"
    )
    notifications_delivered: int = 0
    notifications_undelivered: int = Field(
        default=0, description="left in the outbox after delivery kept failing"
    )
    batches: int = 0
    runs: int = Field(default=1, description="workflow runs so far (continue-as-new chain)")
    cursor: uuid.UUID | None = Field(default=None, description="last wallet id evaluated")

    def line(self) -> str:
        share = (
            f" of ~{self.wallets_estimate}" if self.wallets_estimate else ""
        ) + f" ({self.batches} batches, run {self.runs})"
        return (
            f"{self.status}: {self.wallets_evaluated} wallets evaluated{share}; "
            f"{self.upgraded} up, {self.downgraded} down, {self.downgrades_in_grace} in grace"
        )


class TierEvaluationState(BaseModel):
    """Carried from one run to the next by continue-as-new."""

    ladder: list[TierStep]
    progress: TierEvaluationProgress


class TierEvaluationInput(BaseModel):
    batch_size: int = Field(default=2000, ge=1, le=50_000)
    downgrade_grace_days: int = Field(default=30, ge=0, le=3650)
    batches_per_run: int = Field(
        default=200, ge=1, description="batches before continue-as-new keeps the history small"
    )
    as_of: AwareDatetime | None = Field(
        default=None, description="evaluate points as of this instant; default: workflow start"
    )
    state: TierEvaluationState | None = None


class TierEvaluationStart(BaseModel):
    ladder: list[TierStep]
    wallets_estimate: int


class TierBatchInput(BaseModel):
    evaluation_id: str
    as_of: datetime
    ladder: list[TierStep]
    after: uuid.UUID | None
    limit: int
    downgrade_grace_days: int


class TierBatchResult(BaseModel):
    evaluated: int
    last_wallet_id: uuid.UUID | None
    upgraded: int = Field(description="changes this evaluation recorded in the batch's range")
    downgraded: int
    downgrades_in_grace: int
    deliver_notifications: bool = Field(
        default=False, description="changes were made and a notification service is configured"
    )

    @property
    def changes(self) -> int:
        return self.upgraded + self.downgraded


class TierNotifyInput(BaseModel):
    evaluation_id: str
    after: uuid.UUID | None
    last: uuid.UUID


class TierNotifyResult(BaseModel):
    delivered: int
    queued: int = Field(description="recorded in the outbox only (no NOTIFY_URL)")
    refused: int = 0


class TierEvaluationResult(BaseModel):
    progress: TierEvaluationProgress
