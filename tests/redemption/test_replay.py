"""Saved histories of every saga path replay against the current workflow code without
non-determinism errors. Regenerate them after a deliberate, versioned change with

    REDEMPTION_SAVE_HISTORIES=1 .venv/bin/python -m pytest tests/redemption

(the tests that call `save_history` rewrite tests/redemption/histories/<path>.json)."""

from __future__ import annotations

import pytest

from tests.histories import load, replay_failure, skip_while_saving
from tests.redemption.conftest import HISTORIES as HISTORIES_DIR
from tests.redemption.conftest import SAVE_HISTORIES_ENV
from workflows.redemption import RedemptionWorkflow

HISTORIES = load(HISTORIES_DIR)
EXPECTED_PATHS = {
    "paid_captured",
    "all_points_confirmed",
    "released_by_booking",
    "paid_before_cancel_captured",
    "expired_released",
    "rejected_insufficient_points",
    "http_paid_captured",
    "payment_failed_released",
    "worker_killed_captured",
}


pytestmark = skip_while_saving(SAVE_HISTORIES_ENV)


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= EXPECTED_PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([RedemptionWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
