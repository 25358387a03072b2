"""Earning's settings: notifications go to the test's local receiver, and earned points stay
pending for `pending_seconds` (0 unless a test module or test says otherwise)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.receiver import Receiver


@pytest.fixture
def pending_seconds() -> int:
    """Override in a test module (or parametrize a test) for pending points."""
    return 0


@pytest.fixture
def settings_overrides(receiver: Receiver, pending_seconds: int) -> dict[str, Any]:
    return {
        "notify_url": receiver.url,
        "earn_pending_seconds": pending_seconds,
        "accrual_wait_for_payment_seconds": 120,
    }
