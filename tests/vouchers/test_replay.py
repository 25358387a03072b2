"""Saved histories of VoucherPurchaseWorkflow replay on the current code without non-determinism
errors, so a change to the workflow that would break running purchases fails here: completed,
compensated, and the refusals (rejected at the reservation, burn_rejected after it). Regenerate
with `SAVE_HISTORIES=1 make pytest ARGS=tests/vouchers`.

`refused` is a refusal from before the `voucher-refusals-complete` patch, when a refusal failed
the workflow: no test rewrites it, so the old shape keeps replaying."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.histories import load, replay_failure, skip_while_saving
from workflows.vouchers import VoucherPurchaseWorkflow

HISTORIES = load(Path(__file__).parent / "histories")

pytestmark = skip_while_saving()


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= {"completed", "refused", "compensated", "rejected", "burn_rejected"}


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([VoucherPurchaseWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
