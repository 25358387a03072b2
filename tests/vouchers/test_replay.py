"""Saved histories of VoucherPurchaseWorkflow (completed, refused, compensated) replay on the
current code without non-determinism errors, so a change to the workflow that would break
running purchases fails here. Regenerate with `VOUCHERS_SAVE_HISTORIES=1 pytest tests/vouchers`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.voucher_purchase import VoucherPurchaseWorkflow

HISTORIES = {
    p.stem: p.read_text() for p in sorted((Path(__file__).parent / "histories").glob("*.json"))
}


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= {"completed", "refused", "compensated"}


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(f"voucher-replay-{name}", HISTORIES[name])
    replayer = Replayer(workflows=[VoucherPurchaseWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
