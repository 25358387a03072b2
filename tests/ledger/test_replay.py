"""Saved histories of InvariantCheckWorkflow replay on the current workflow code without
non-determinism errors: a clean check, one that found violations (LedgerAlert set), and one that
found violations on the code from before LedgerAlert existed (it completed right after its
activity; the `ledger-alert` patch keeps it replaying). Regenerate the first two after a
deliberate, versioned change with

    SAVE_HISTORIES=1 make pytest ARGS=tests/ledger/test_invariant_check.py

(`violations_before_alert` was recorded once on the old code and stays as it is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.histories import load, replay_failure, skip_while_saving
from workflows.ledger import InvariantCheckWorkflow

HISTORIES = load(Path(__file__).parent / "histories")
EXPECTED_PATHS = {"clean", "violations", "violations_before_alert"}

pytestmark = skip_while_saving()


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= EXPECTED_PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([InvariantCheckWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
