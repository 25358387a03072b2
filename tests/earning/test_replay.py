"""Saved histories of AccrualWorkflow and RefundWorkflow replay on the current workflow code
without non-determinism errors, so a change that would break running accruals and refunds fails
here. Regenerate them after a deliberate, versioned change with

    SAVE_HISTORIES=1 make pytest ARGS=tests/earning

(the tests that call `save_history` rewrite tests/earning/histories/<path>.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.histories import load, replay_failure, skip_while_saving
from workflows.earning import AccrualWorkflow, RefundWorkflow

HISTORIES = load(Path(__file__).parent / "histories")
EXPECTED_PATHS = {
    "accrual_posted",
    "accrual_pending_activated",
    "accrual_pending_voided",
    "accrual_repays_debt",
    "refund_burn_returned_and_clawed_back",
    "refund_debt",
    "refund_voids_pending",
}

pytestmark = skip_while_saving()


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= EXPECTED_PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([AccrualWorkflow, RefundWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
