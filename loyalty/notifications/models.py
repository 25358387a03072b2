"""What a notification is: a kind, the customer, a payload, and the idempotency key that makes
it one event however often it is recorded or sent. Pydantic only: workflows carry it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class NotificationKind(StrEnum):
    POINTS_EARNED = "points_earned"
    TIER_CHANGED = "tier_changed"
    VOUCHER_DELIVERED = "voucher_delivered"
    POINTS_RETURNED = "points_returned"  # points paid with, given back on a refund
    POINTS_CLAWED_BACK = "points_clawed_back"  # points earned, taken back on a refund
    POINTS_REDEEMED = "points_redeemed"  # a checkout's held points spent (captured)
    HOLD_RELEASED = "hold_released"  # a checkout's held points available again (released)
    POINTS_EXPIRING = "points_expiring"  # points of lots due soon (the expiry run's reminder)


class Notification(BaseModel):
    idempotency_key: str = Field(min_length=1, max_length=255)
    kind: NotificationKind
    user_id: str = Field(min_length=1, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """What the notification service receives (the key also travels as Idempotency-Key)."""
        return {
            "id": self.idempotency_key,
            "kind": self.kind.value,
            "user_id": self.user_id,
            "payload": self.payload,
        }
