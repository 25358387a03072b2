"""Saved histories of TierEvaluationWorkflow (every run of a continue-as-new chain, a downgrade
into grace and one after it) replay on the current workflow code without non-determinism
errors. Regenerate them after a deliberate, versioned change with

    SAVE_HISTORIES=1 make pytest ARGS=tests/tiers

(the tests that call `save_history` rewrite tests/tiers/histories/<path>.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.histories import load, replay_failure, skip_while_saving
from workflows.tiers import TierEvaluationWorkflow

HISTORIES = load(Path(__file__).parent / "histories")
# continued_as_new.run1 ends in continue-as-new; run2 starts from the carried state.
EXPECTED_PATHS = {
    "continued_as_new.run1",
    "continued_as_new.run2",
    "downgrade_into_grace",
    "downgrade_after_grace",
}

pytestmark = skip_while_saving()


def test_every_path_has_a_saved_history() -> None:
    assert set(HISTORIES) >= EXPECTED_PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_history_replays(name: str) -> None:
    failure = await replay_failure([TierEvaluationWorkflow], name, HISTORIES[name])
    assert failure is None, f"{name}: {failure!r}"
