"""Workflow code stays deterministic without the sandbox.

The worker runs workflows outside temporalio's sandbox as shipped (WORKFLOW_SANDBOX, see
loyalty/settings.py). Two checks stand in for it: the test suite's in-process workers run in the
sandbox (tests/conftest.py), which refuses non-deterministic calls on every path a test takes,
and this module reads the workflow modules for calls and imports that have no place in workflow
code on any path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import worker
from loyalty.core.settings import PROJECT_ROOT, Settings

WORKFLOW_DIR = PROJECT_ROOT / "workflows"

# Clock, randomness, environment and I/O: workflow.now(), workflow.uuid4(), workflow.random()
# and activities are the deterministic ways to get these.
FORBIDDEN_CALLS = {
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.datetime.today",
    "datetime.date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "uuid.uuid1",
    "uuid.uuid4",
    "os.urandom",
    "os.getenv",
    "open",
    "input",
}
FORBIDDEN_MODULES = {
    "random",
    "secrets",
    "threading",
    "socket",
    "subprocess",
    "sqlalchemy",
    "asyncpg",
    "stripe",
    "httpx",
    "aiohttp",
    "requests",
}
FORBIDDEN_NAMES = {"os.environ"}


def problems_in(source: str, filename: str = "<source>", *, imports: bool = True) -> list[str]:
    """Forbidden calls, global state and (with `imports`) imports in one module's source, as
    readable lines."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> dotted origin
    found: list[str] = []

    def where(node: ast.AST) -> str:
        return f"{filename}:{getattr(node, 'lineno', '?')}"

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]
                if imports and alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where(node)}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            if imports and node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{where(node)}: imports from {node.module}")
        elif isinstance(node, ast.Global | ast.Nonlocal):
            found.append(f"{where(node)}: rebinds {', '.join(node.names)} outside the instance")

    def dotted(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in FORBIDDEN_CALLS:
                found.append(f"{where(node)}: calls {name}()")
        elif isinstance(node, ast.Attribute | ast.Name) and dotted(node) in FORBIDDEN_NAMES:
            found.append(f"{where(node)}: reads {dotted(node)}")
    return found


def loyalty_modules_used_by(paths: list[Path]) -> list[Path]:
    """The loyalty modules the given modules import, directly or through each other. The sandbox
    passes them through unchecked; here their calls are read like workflow code. (Their imports
    are not: a contracts module may sit beside the SQL of its feature.)"""
    seen: dict[str, Path] = {}
    todo = list(paths)
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                path = PROJECT_ROOT / (name.replace(".", "/") + ".py")
                if name.startswith("loyalty.") and path.exists() and name not in seen:
                    seen[name] = path
                    todo.append(path)
    return sorted(seen.values())


def test_workflow_modules_have_no_nondeterministic_calls() -> None:
    workflows = sorted(WORKFLOW_DIR.glob("*.py"))
    rules = loyalty_modules_used_by(workflows)
    assert len(workflows) >= 7 and PROJECT_ROOT / "loyalty/redemption/rules.py" in rules
    found = [
        problem
        for paths, imports in ((workflows, True), (rules, False))
        for path in paths
        for problem in problems_in(
            path.read_text(), str(path.relative_to(PROJECT_ROOT)), imports=imports
        )
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from datetime import datetime\nx = datetime.now()", "calls datetime.datetime.now()"),
        ("import datetime as dt\nx = dt.date.today()", "calls datetime.date.today()"),
        ("import time\ntime.sleep(1)", "calls time.sleep()"),
        ("from uuid import uuid4\nx = uuid4()", "calls uuid.uuid4()"),
        ("import random\nx = random.random()", "imports random"),
        ("from sqlalchemy import text", "imports from sqlalchemy"),
        ("import os\nx = os.environ['A']", "reads os.environ"),
        ("x = open('f')", "calls open()"),
        ("def f():\n    global n\n    n = 1", "rebinds n outside the instance"),
    ],
)
def test_the_check_finds_what_it_looks_for(source: str, expected: str) -> None:
    found = problems_in(source)
    assert len(found) == 1 and found[0].endswith(expected), found


def test_allowed_code_passes_the_check() -> None:
    source = (
        "from datetime import timedelta\nfrom temporalio import workflow\n"
        "x = workflow.now() + timedelta(seconds=1)\ny = workflow.uuid4()\n"
    )
    assert problems_in(source) == []


def test_in_process_test_workers_run_in_the_sandbox() -> None:
    # tests/conftest.py turns it on for the suite; off is what ships.
    assert Settings(environment="test").workflow_sandbox is True
    assert worker.workflow_runner(True) is worker.WORKFLOW_RUNNER
    assert type(worker.workflow_runner(False)).__name__ == "UnsandboxedWorkflowRunner"
    assert Settings.model_fields["workflow_sandbox"].default is False


def test_workflow_dir_is_the_registry_package() -> None:
    from workflows import registry

    assert Path(registry.__file__).parent == WORKFLOW_DIR
