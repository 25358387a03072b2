"""Saved histories of VoucherPurchaseWorkflow (completed, refused, compensated) replay on the
current code without non-determinism errors, so a change to the workflow that would break
running purchases fails here. Regenerate with `SAVE_HISTORIES=1 make pytest ARGS=tests/vouchers`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.histories import load, replay_failure, skip_while_saving
from workflows.vouchers import VoucherPurchaseWorkflow

HISTORIES = load(Path(__file__).parent / "histories")

pytestmark = skip_while_saving()


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= {"completed", "refused", "compensated"}


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([VoucherPurchaseWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
