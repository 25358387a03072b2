"""Saved workflow histories for the replay tests: saving them from real runs against the dev
server, loading them, and replaying them on the current workflow code.

A package keeps its histories in `<package>/histories/<name>.json`. Its end-to-end tests call
the `save_history` fixture after a run; it writes only when SAVE_HISTORIES is `1`
(`SAVE_HISTORIES=1 make pytest ARGS=tests/earning`), and the replay tests skip themselves during
such a run (`skip_while_saving`). A run that continued as new is saved one file per run
(`<name>.run1.json`, `<name>.run2.json`, ...), since a history holds a single run."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from loyalty.core.settings import Settings
from loyalty.core.temporal import data_converter
from worker import WORKFLOW_RUNNER

SaveHistory = Callable[..., Awaitable[None]]


SAVE_HISTORIES = "SAVE_HISTORIES"


def saving() -> bool:
    return os.environ.get(SAVE_HISTORIES) == "1"


def skip_while_saving() -> pytest.MarkDecorator:
    """The replay test's `pytestmark`: the histories are being rewritten by this very run."""
    return pytest.mark.skipif(saving(), reason="histories are being rewritten")


def history_saver(client: Client, directory: Path) -> SaveHistory:
    """`await save(name, workflow_id)` writes the workflow's latest run to `<name>.json`;
    `await save(name, workflow_id, run_id=first_run, all_runs=True)` writes that run and every
    run it continued as new into, as `<name>.run<i>.json`. A no-op unless SAVE_HISTORIES=1."""

    async def save(
        name: str, workflow_id: str, *, run_id: str | None = None, all_runs: bool = False
    ) -> None:
        if not saving():
            return
        if not all_runs:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            _write(directory, name, (await handle.fetch_history()).to_json(), clear=())
            return
        runs, run = [], run_id
        while True:
            history = await client.get_workflow_handle(workflow_id, run_id=run).fetch_history()
            runs.append(history.to_json())
            last = history.events[-1]
            if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                break
            run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        stale = f"{name}.run*.json"
        for number, text in enumerate(runs, start=1):
            _write(directory, f"{name}.run{number}", text, clear=(stale,) if number == 1 else ())

    return save


def _write(directory: Path, name: str, text: str, clear: Sequence[str]) -> None:
    directory.mkdir(exist_ok=True)
    for pattern in clear:  # runs left from a longer chain saved before
        for path in directory.glob(pattern):
            path.unlink()
    (directory / f"{name}.json").write_text(text)


def load(directory: Path) -> dict[str, str]:
    """Saved history name (file stem) -> its JSON."""
    return {p.stem: p.read_text() for p in sorted(directory.glob("*.json"))}


async def replay_failure(workflows: Sequence[type], name: str, history_json: str) -> object:
    """Replays one saved history with the worker's own sandbox and data converter; returns the
    replay failure (a non-determinism error, for instance) or None."""
    history = WorkflowHistory.from_json(f"replay-{name}", history_json)
    replayer = Replayer(
        workflows=workflows,
        data_converter=data_converter(Settings(environment="test")),
        workflow_runner=WORKFLOW_RUNNER,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure
