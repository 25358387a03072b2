"""The points expiry's Temporal contract: workflow input, progress (carried across
continue-as-new), and the activities' inputs and results. Pydantic only (sandbox-safe)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

# The workflow's type name: the schedule (loyalty.expiry.schedule) starts it by this name, and
# running schedules and saved histories name it, so it never changes.
WORKFLOW_NAME = "PointsExpiry"

Phase = Literal["expiring", "reminding", "done"]


class Keyset(BaseModel):
    """A lot's place in the run's walk: lots are visited by (expires_at, lot_id)."""

    expires_at: datetime
    lot_id: int

    def __str__(self) -> str:
        return f"lot {self.lot_id} ({self.expires_at.isoformat(timespec='seconds')})"


class ExpiryProgress(BaseModel):
    """What an operator sees through the `progress` query and the workflow's details."""

    expiry_id: str = Field(description="the first run's id; stable across continue-as-new")
    status: Literal["running", "done"] = "running"
    phase: Phase = "expiring"
    as_of: datetime = Field(description="lots due at this instant expire")
    started_at: datetime
    tx_watermark: int = Field(
        description="the last ledger row before the run: its expire postings come after it"
    )
    due_estimate: int = Field(description="lots due when the run started")
    lots_expired: int = 0
    points_expired: int = 0
    wallets_touched: int = Field(default=0, description="distinct wallets with a lot expired")
    cursor: Keyset | None = Field(default=None, description="the last lot the expiry visited")
    expiring_seconds: float | None = Field(
        default=None, description="workflow time the expiry phase took, once it is over"
    )
    reminder_days: int = 0
    reminder_until: datetime | None = Field(
        default=None, description="lots due after as_of and up to this instant get a reminder"
    )
    customers_reminded: int = 0
    lots_reminded: int = 0
    reminder_cursor: Keyset | None = None
    batches: int = 0
    runs: int = Field(default=1, description="workflow runs so far (continue-as-new chain)")

    def line(self) -> str:
        share = f" of ~{self.due_estimate}" if self.due_estimate else ""
        cursor = self.reminder_cursor if self.phase == "reminding" else self.cursor
        return (
            f"{self.status} ({self.phase}): {self.lots_expired}{share} lots expired, "
            f"{self.points_expired} points, {self.wallets_touched} wallets; "
            f"{self.customers_reminded} customers reminded of {self.lots_reminded} lots; "
            f"after {cursor or 'start'} ({self.batches} batches, run {self.runs})"
        )


class ExpiryInput(BaseModel):
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    batches_per_run: int = Field(
        default=200, ge=1, description="batches before continue-as-new keeps the history small"
    )
    reminder_days: int = Field(
        default=30, ge=0, le=366, description="remind this many days before expiry; 0: never"
    )
    concurrency: int = Field(
        default=4, ge=1, le=32, description="expire postings of a batch in flight at once"
    )
    heartbeat_seconds: int = Field(
        default=30, ge=1, le=600, description="a batch silent this long is retried elsewhere"
    )
    as_of: AwareDatetime | None = Field(
        default=None, description="expire lots due at this instant; default: workflow start"
    )
    progress: ExpiryProgress | None = None


class ExpiryStartInput(BaseModel):
    as_of: datetime


class ExpiryStart(BaseModel):
    tx_watermark: int
    due_estimate: int


class ExpiryBatchInput(BaseModel):
    expiry_id: str
    as_of: datetime
    tx_watermark: int
    after: Keyset | None
    limit: int
    concurrency: int = 4


class ExpiryBatchResult(BaseModel):
    fetched: int = Field(description="due lots in the page (a short page is the last)")
    lots_expired: int = Field(description="lots of the page this run expired (now or before)")
    points_expired: int
    wallets_new: int = Field(description="wallets of the page with no lot expired before")
    last: Keyset | None


class ReminderBatchInput(BaseModel):
    expiry_id: str
    as_of: datetime
    until: datetime
    after: Keyset | None
    limit: int


class ReminderBatchResult(BaseModel):
    fetched: int
    customers: int = Field(description="reminders written (one per customer)")
    lots: int = Field(description="lots recorded as reminded")
    last: Keyset | None


class ExpiryResult(BaseModel):
    progress: ExpiryProgress


class ReminderLot(BaseModel):
    """A lot due within the reminder window, with its customer."""

    lot_id: int
    wallet_id: uuid.UUID
    user_id: str
    remaining: int
    expires_at: datetime
