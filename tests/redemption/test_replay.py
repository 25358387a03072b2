"""Saved histories of every saga path replay against the current workflow code without
non-determinism errors. Regenerate them after a deliberate, versioned change with

    REDEMPTION_SAVE_HISTORIES=1 .venv/bin/python -m pytest tests/redemption

(the tests that call `save_history` rewrite tests/redemption/histories/<path>.json)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.redemption import RedemptionWorkflow

HISTORIES = {
    p.stem: p.read_text() for p in sorted((Path(__file__).parent / "histories").glob("*.json"))
}
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


pytestmark = pytest.mark.skipif(
    os.environ.get("REDEMPTION_SAVE_HISTORIES") == "1", reason="histories are being rewritten"
)


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= EXPECTED_PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(f"redemption-replay-{name}", HISTORIES[name])
    replayer = Replayer(workflows=[RedemptionWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
