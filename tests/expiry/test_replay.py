"""Saved histories of PointsExpiryWorkflow (every run of a continue-as-new chain of the expiry,
and of a run with reminders) replay on the current workflow code without non-determinism
errors. Regenerate them after a deliberate, versioned change with

    SAVE_HISTORIES=1 make pytest ARGS=tests/expiry/test_expiry.py

(the tests that call `save_history` rewrite tests/expiry/histories/<path>.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.histories import load, replay_failure, skip_while_saving
from workflows.expiry import PointsExpiryWorkflow

HISTORIES = load(Path(__file__).parent / "histories")
# continued_as_new.run1 ends in continue-as-new; the later runs start from the carried progress.
EXPECTED_PATHS = {"continued_as_new.run1", "continued_as_new.run2", "reminders.run1"}

pytestmark = skip_while_saving()


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= EXPECTED_PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([PointsExpiryWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
